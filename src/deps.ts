import { resolve } from 'node:path';
import pino, { type Logger } from 'pino';
import { AccountChanges } from './accounts/account-changes.js';
import { AdminService } from './admin/admin-service.js';
import { RecentCountsOfDay } from './admin/recent-counts.js';
import { AuditLog } from './audit/audit-log.js';
import { type CaptchaVerifier, createCaptchaVerifier } from './auth/captcha.js';
import { createSendLimiter } from './auth/create-send-limiter.js';
import { OtpService, type OtpSettings } from './auth/otp-service.js';
import { normalizePhone } from './auth/phone.js';
import { resolveSecretKey } from './auth/secret-key.js';
import type { SendLimiter } from './auth/send-limiter.js';
import { SessionService, type Sessions } from './auth/session-service.js';
import { SignInBatcher } from './auth/sign-in-batcher.js';
import { SignInService } from './auth/sign-in-service.js';
import { UserService, type Users } from './auth/user-service.js';
import { CachedReferrals } from './cache/cached-referrals.js';
import { CachedSessions } from './cache/cached-sessions.js';
import { RequestVersions } from './cache/request-versions.js';
import type { Config } from './config.js';
import { type Database, openDatabase } from './db/client.js';
import { EventLog } from './events/event-log.js';
import { FraudSignals } from './events/fraud-signals.js';
import { Outbox } from './events/outbox.js';
import { WebhookWorker } from './events/webhook-worker.js';
import { type Clock, systemClock } from './lib/clock.js';
import { cryptoRandom, type Random } from './lib/random.js';
import {
  type Dependency,
  describeCause,
  redactUrl,
  StartupDeadline,
  StartupError,
  secretsOf,
  waitUntilReachable,
} from './lib/wait-until-reachable.js';
import { meteredSmsSender } from './ops/metered-sms-sender.js';
import { createMetrics, type Metrics } from './ops/metrics.js';
import { BatchedReferrals } from './referrals/batched-referrals.js';
import { ReferralService, type Referrals } from './referrals/referral-service.js';
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
  /** The provider, counted in `otp_codes_sent_total`. */
  sms: SmsSender;
  /** Required on request-code when CAPTCHA_PROVIDER is set; null otherwise. */
  captcha: CaptchaVerifier | null;
  metrics: Metrics;
  /** The send caps (OTP_MAX_*, SMS_MAX_*), kept in the store. */
  limiter: SendLimiter;
  /** The one way to commit a change a token check or profile read sees. */
  changes: AccountChanges;
  sessions: Sessions;
  users: Users;
  referrals: Referrals;
  /** The audit log of SPEC 5: every admin action, sign-in failures, budget hits. */
  audit: AuditLog;
  otp: OtpService;
  signIns: SignInService;
  admin: AdminService;
  outbox: Outbox;
  eventLog: EventLog;
  /** Delivers the outbox to WEBHOOK_URLS; null without them or without WEBHOOK_SECRET. */
  webhooks: WebhookWorker | null;
};

/** What a caller (a test, a tool) may put in place of what createDeps would make. */
export type DepsOverrides = Partial<
  Pick<Deps, 'logger' | 'clock' | 'random' | 'database' | 'store' | 'sms' | 'metrics'>
> & {
  /** Puts something between the service and its store (a test making it fail on purpose). */
  wrapStore?: (store: KeyValueStore) => KeyValueStore;
};

/**
 * The plain services, with the speed layers around them: the token and
 * profile caches (CACHE_SIZE, 0: none) and sign-in batching
 * (SIGN_IN_BATCHING). Every write they make goes through `changes`. The CLI
 * builds its admin service here too, with CACHE_SIZE=0.
 */
export function composeServices(
  parts: Pick<Deps, 'config' | 'logger' | 'clock' | 'random' | 'database' | 'store'>,
): Pick<Deps, 'changes' | 'sessions' | 'users' | 'referrals' | 'audit' | 'admin'> {
  const { config, logger, clock, random, database, store } = parts;
  const changes = new AccountChanges(database, store, random);
  const plainSessions = new SessionService(database, changes, clock, random, config.TOKEN_TTL_DAYS);
  const plainUsers = new UserService(database, clock, random, config.webhookUrls);
  const fraud = new FraudSignals({ velocityPerHour: config.FRAUD_VELOCITY_PER_HOUR });
  const plainReferrals = new ReferralService(database, changes, clock, fraud);
  const cached = config.CACHE_SIZE > 0;
  // One read of the user's version per request, shared by both caches.
  const versions = new RequestVersions(changes);
  const sessions = cached
    ? new CachedSessions(plainSessions, versions, clock, config.CACHE_SIZE)
    : plainSessions;
  const users = config.SIGN_IN_BATCHING ? new SignInBatcher(plainUsers) : plainUsers;
  const audit = new AuditLog(database, clock, logger);
  return {
    changes,
    sessions,
    users,
    referrals: cached
      ? new CachedReferrals(plainReferrals, sessions, versions, clock, config.CACHE_SIZE)
      : config.SIGN_IN_BATCHING
        ? new BatchedReferrals(plainReferrals)
        : plainReferrals,
    audit,
    admin: new AdminService(
      database,
      changes,
      clock,
      sessions,
      users,
      audit,
      new RecentCountsOfDay(database, clock),
    ),
  };
}

/** The OTP settings of the config; TEST_PHONE_NUMBERS normalised as sign-in normalises numbers. */
function otpSettings(config: Config): OtpSettings {
  const testCodes = new Map<string, string>();
  for (const { phone, code } of config.testPhones) {
    const normalized = normalizePhone(phone, {
      defaultRegion: config.DEFAULT_PHONE_REGION,
      allowedRegions: [],
      deniedRegions: [],
      allowNonMobile: true,
    });
    if (!normalized.ok)
      throw new Error(`TEST_PHONE_NUMBERS: "${phone}" is not a valid phone number`);
    testCodes.set(normalized.phoneNumber, code);
  }
  return {
    secretKey: config.secretKey,
    length: config.OTP_LENGTH,
    ttlSeconds: config.OTP_TTL_SECONDS,
    maxAttempts: config.OTP_MAX_ATTEMPTS,
    maxFailedPerHour: config.OTP_MAX_FAILED_PER_PHONE_PER_HOUR,
    testCodes,
  };
}

/** Everything else, once storage is open (or given). */
export function assembleDeps(
  parts: Pick<Deps, 'config' | 'logger' | 'clock' | 'random' | 'database' | 'store'> &
    Partial<Pick<Deps, 'sms' | 'metrics'>>,
): Deps {
  const { config, logger, clock, random, database, store } = parts;
  const metrics = parts.metrics ?? createMetrics({ smsMaxPerHour: config.SMS_MAX_PER_HOUR });
  const sms = meteredSmsSender(parts.sms ?? createSmsSender(config, logger), metrics);
  const services = composeServices(parts);
  const limiter = createSendLimiter({ ...parts, audit: services.audit });
  const otp = new OtpService(store, clock, random, sms, limiter, otpSettings(config));
  const eventLog = new EventLog(database);
  metrics.readOnScrape(async () => metrics.outboxPending.set(await eventLog.pendingCount()));
  const webhooks =
    config.webhookUrls.length > 0 && config.WEBHOOK_SECRET
      ? new WebhookWorker(database, clock, random, metrics, logger, {
          urls: config.webhookUrls,
          secret: config.WEBHOOK_SECRET,
        })
      : null;
  return {
    ...parts,
    sms,
    metrics,
    captcha: createCaptchaVerifier(config),
    limiter,
    ...services,
    otp,
    signIns: new SignInService(otp, services.users, services.sessions),
    outbox: new Outbox(config.webhookUrls, clock),
    eventLog,
    webhooks,
  };
}

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

/**
 * Resolves once every line logged so far is written. pino writes to stdout
 * asynchronously, and at exit writes what is still queued synchronously,
 * while a write already in flight may not have finished: the last lines of a
 * stop then came out of order ("stopped" before the answers it waited for).
 * An empty write is answered by the stream's `drain` once all before it are
 * out. Writing every line synchronously instead cost 19% of /healthz at
 * LOG_LEVEL=info (medians of six runs at 64 connections: 27.7k vs 34.3k req/s).
 */
export function logsWritten(logger: Logger): Promise<void> {
  const stream = (logger as unknown as Record<symbol, NodeJS.WritableStream | undefined>)[
    pino.symbols.streamSym
  ];
  if (!stream) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('drain', () => resolve());
    stream.once('error', () => resolve());
    stream.write('');
  });
}

/** The database as an operator configured it, for start-up messages. */
function databaseDependency(config: Config): Dependency {
  const url = config.DATABASE_URL;
  if (url?.startsWith('postgres')) {
    return {
      variable: 'DATABASE_URL',
      description: `PostgreSQL at ${redactUrl(url)}`,
      secrets: secretsOf(url),
    };
  }
  if (url !== undefined) {
    return { variable: 'DATABASE_URL', description: 'the in-memory database', secrets: [] };
  }
  return {
    variable: 'DATA_DIR',
    description: `the embedded database in ${resolve(config.DATA_DIR)}`,
    secrets: [],
  };
}

/**
 * Opens the configured database, waiting for PostgreSQL to answer until the
 * deadline (StartupError past it). An embedded DATA_DIR held by another
 * process is refused at once (DataDirLockError). Used by the service and by
 * every command that opens its database (`npm run migrate`).
 */
export async function openDatabaseWhenReachable(
  config: Config,
  logger: Logger,
  deadline = new StartupDeadline(config.STARTUP_TIMEOUT_SECONDS),
): Promise<Database> {
  const database = await openDatabase({
    url: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    poolSize: config.DATABASE_POOL_SIZE,
    logger,
  });
  if (database.kind !== 'postgres') return database;
  try {
    await waitUntilReachable(databaseDependency(config), () => database.ping(), {
      deadline,
      logger,
    });
  } catch (error) {
    await database.close();
    throw error;
  }
  return database;
}

/** Applies pending migrations; answers how many. A failure is a StartupError naming the database. */
export async function migrateDatabase(database: Database, config: Config): Promise<number> {
  try {
    return await database.migrate();
  } catch (error) {
    const { variable, description, secrets } = databaseDependency(config);
    throw new StartupError(
      `${variable}: migrating ${description} failed: ${describeCause(error, secrets)}`,
    );
  }
}

/**
 * Connects to Redis, waiting for it to answer until the deadline. ioredis is
 * loaded only when Redis is configured: the embedded service starts without it.
 */
async function openRedisStoreWhenReachable(
  url: string,
  logger: Logger,
  deadline: StartupDeadline,
): Promise<KeyValueStore> {
  const [{ RedisStore }, { pingRedis }] = await Promise.all([
    import('./store/redis-store.js'),
    import('./store/redis-ping.js'),
  ]);
  const seeds = url.split(',').map((seed) => seed.trim());
  const dependency: Dependency = {
    variable: 'REDIS_URL',
    description: `Redis at ${seeds.map(redactUrl).join(',')}`,
    secrets: seeds.flatMap(secretsOf),
  };
  return waitUntilReachable(
    dependency,
    async () => {
      await pingRedis(url);
      return RedisStore.connect({ url, logger });
    },
    { deadline, logger },
  );
}

/**
 * Opens storage for the service. PostgreSQL and Redis that do not answer yet
 * are retried for STARTUP_TIMEOUT_SECONDS in all (StartupError past it).
 * `overrides` replace parts (a test's clock, SMS sender, database or store);
 * a given database or store is the caller's to close.
 */
export async function createDeps(loaded: Config, overrides: DepsOverrides = {}): Promise<Deps> {
  const logger = overrides.logger ?? createLogger(loaded);
  const clock = overrides.clock ?? systemClock;
  const deadline = new StartupDeadline(loaded.STARTUP_TIMEOUT_SECONDS);
  const database =
    overrides.database ?? (await openDatabaseWhenReachable(loaded, logger, deadline));
  let config: Config;
  let store: KeyValueStore;
  try {
    // After the database, so that a DATA_DIR is ours (locked) before a key is made in it.
    config = resolveSecretKey(loaded);
    if (config.usesDevelopmentSecret) {
      logger.warn(
        'SECRET_KEY is not set: using the development-only key, which anyone can read. Set SECRET_KEY.',
      );
    }
    store =
      overrides.store ??
      (config.REDIS_URL
        ? await openRedisStoreWhenReachable(config.REDIS_URL, logger, deadline)
        : new MemoryStore(clock));
  } catch (error) {
    if (overrides.database === undefined) await database.close();
    throw error;
  }
  if (overrides.wrapStore) store = overrides.wrapStore(store);
  return assembleDeps({
    config,
    logger,
    clock,
    random: overrides.random ?? cryptoRandom,
    database,
    store,
    sms: overrides.sms,
    metrics: overrides.metrics,
  });
}

export async function closeDeps(deps: Deps): Promise<void> {
  await Promise.allSettled([deps.store.close(), deps.database.close()]);
}
