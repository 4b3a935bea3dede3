import closeWithGrace from 'close-with-grace';
import { type App, buildApp } from './app.js';
import { type Config, ConfigError, loadConfig, loadDotEnv } from './config.js';
import { DataDirLockError } from './db/data-dir-lock.js';
import {
  closeDeps,
  createDeps,
  createLogger,
  type Deps,
  logsWritten,
  migrateDatabase,
} from './deps.js';
import { checkCanListen, listenError } from './lib/port-check.js';
import { StartupError } from './lib/wait-until-reachable.js';

/** Start-up failures the operator can act on: one line on stderr, no stack, exit 1. */
function exitWith(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

const env = { ...process.env };
loadDotEnv(env);
let config: Config;
try {
  config = loadConfig(env);
} catch (error) {
  if (error instanceof ConfigError) exitWith(error.message);
  throw error;
}

const logger = createLogger(config);

let deps: Deps | undefined;
let app: App | undefined;

// SIGTERM/SIGINT, also while start-up still waits for the database: stop
// accepting connections, finish in-flight requests, then close storage.
closeWithGrace(
  {
    delay: config.SHUTDOWN_TIMEOUT_SECONDS * 1000,
    logger,
    onTimeout: (delayMs) =>
      logger.error(
        `not closed within SHUTDOWN_TIMEOUT_SECONDS=${delayMs / 1000}: exiting with what is still in flight`,
      ),
  },
  async ({ signal, err }) => {
    if (err) logger.error({ err }, 'shutting down after an error');
    else logger.info({ signal }, 'shutting down');
    await app?.close();
    if (deps) await closeDeps(deps);
    logger.info('stopped');
    await logsWritten(logger);
  },
);

try {
  await checkCanListen(config.HOST, config.PORT);
  deps = await createDeps(config, { logger });
  const applied = await migrateDatabase(deps.database, config);
  if (applied > 0) logger.info({ applied }, `applied ${plural(applied, 'migration')}`);
  app = await buildApp(deps);
  await app.listen({ port: config.PORT, host: config.HOST }).catch((error: unknown) => {
    throw listenError(error, config.HOST, config.PORT);
  });
} catch (error) {
  if (!(error instanceof StartupError || error instanceof DataDirLockError)) throw error;
  await app?.close();
  if (deps) await closeDeps(deps);
  exitWith(error.message);
}

logger.info(
  {
    database: deps.database.kind,
    store: config.REDIS_URL ? 'redis' : 'memory',
    sms: deps.sms.name,
  },
  `listening on http://${config.HOST}:${config.PORT}`,
);

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
