import pino, { type Logger } from 'pino';
import type { Config } from './config.js';
import { type Database, openDatabase } from './db/client.js';
import { type Clock, systemClock } from './lib/clock.js';
import { cryptoRandom, type Random } from './lib/random.js';
import { createMetrics, type Metrics } from './ops/metrics.js';
import { createSmsSender } from './sms/create-sms-sender.js';
import type { SmsSender } from './sms/sms-sender.js';
import type { KeyValueStore } from './store/key-value-store.js';
import { MemoryStore } from './store/memory-store.js';

/** Everything the app needs from the outside world, chosen in this one place. */
export type Deps = {
  config: Config;
  logger: Logger;
  clock: Clock;
  random: Random;
  database: Database;
  store: KeyValueStore;
  sms: SmsSender;
  metrics: Metrics;
};

/** Fields logged for no request: tokens, codes and secrets never reach the log. */
export const LOG_REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'body.code',
  'body.token',
];

export function createLogger(config: Config): Logger {
  return pino({ level: config.LOG_LEVEL, redact: LOG_REDACT });
}

/** ioredis is loaded only when Redis is configured: the embedded service starts without it. */
async function openRedisStore(url: string, logger: Logger): Promise<KeyValueStore> {
  const { RedisStore } = await import('./store/redis-store.js');
  return RedisStore.connect({ url, logger });
}

export async function createDeps(config: Config, logger = createLogger(config)): Promise<Deps> {
  const clock = systemClock;
  const database = await openDatabase({
    url: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    poolSize: config.DATABASE_POOL_SIZE,
    logger,
  });
  let store: KeyValueStore;
  try {
    store = config.REDIS_URL
      ? await openRedisStore(config.REDIS_URL, logger)
      : new MemoryStore(clock);
  } catch (error) {
    await database.close();
    throw error;
  }
  return {
    config,
    logger,
    clock,
    random: cryptoRandom,
    database,
    store,
    sms: createSmsSender(config, logger),
    metrics: createMetrics({ smsMaxPerHour: config.SMS_MAX_PER_HOUR }),
  };
}

export async function closeDeps(deps: Deps): Promise<void> {
  await Promise.allSettled([deps.store.close(), deps.database.close()]);
}
