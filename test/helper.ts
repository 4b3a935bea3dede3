import { randomBytes } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import { Redis } from 'ioredis';
import pg from 'pg';
import pino, { type Logger } from 'pino';
import { type App, buildApp } from '../src/app.js';
import { type Config, loadConfig } from '../src/config.js';
import { type Database, openDatabase } from '../src/db/client.js';
import { loadPgliteSeed, pgliteStartParams, wrapPglite } from '../src/db/pglite.js';
import { createDeps, type Deps, type DepsOverrides } from '../src/deps.js';
import type { Clock } from '../src/lib/clock.js';
import type { Random } from '../src/lib/random.js';
import type { SmsSender } from '../src/sms/sms-sender.js';
import { SmsDeliveryError } from '../src/sms/sms-sender.js';
import type { KeyValueStore } from '../src/store/key-value-store.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { RedisStore } from '../src/store/redis-store.js';

export type Backend = 'embedded' | 'postgres';

/** PGlite + memory store always; PostgreSQL + Redis too when TEST_* point at them. */
export const backends: Backend[] = [
  'embedded',
  ...(process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL ? (['postgres'] as const) : []),
];

export class FakeClock implements Clock {
  constructor(private ms = Date.UTC(2026, 0, 15, 12, 0, 0)) {}
  now(): Date {
    return new Date(this.ms);
  }
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

/** Records every message instead of sending it; can be told to fail. */
export class FakeSms implements SmsSender {
  readonly name = 'fake';
  readonly sent: { to: string; text: string }[] = [];
  failing = false;

  async send(to: string, text: string): Promise<void> {
    if (this.failing) throw new SmsDeliveryError('fake provider is down');
    this.sent.push({ to, text });
  }

  lastCodeFor(to: string): string | undefined {
    const message = this.sent.filter((m) => m.to === to).at(-1);
    return message?.text.match(/\d{4,10}/)?.[0];
  }
}

let sharedPglite: Promise<PGlite> | undefined;

/** One PGlite engine per test file (its start-up costs seconds); each app starts from empty tables. */
async function freshPglite(): Promise<Database> {
  sharedPglite ??= (async () => {
    const seed = loadPgliteSeed();
    const client = await PGlite.create({
      startParams: pgliteStartParams,
      ...(seed ? { loadDataDir: seed } : {}),
    });
    await wrapPglite(client, false).migrate();
    return client;
  })();
  const client = await sharedPglite;
  await client.exec(
    'truncate table api_tokens, users, audit_log, events, webhook_deliveries restart identity cascade',
  );
  return wrapPglite(client, false);
}

/**
 * What a run makes in PostgreSQL and Redis is named after TEST_DATABASE_URL's
 * database and a test prefix, so that global setup can find and check it:
 * the template `<name>_tpl`, one `<name>_t_<hex>` per PostgreSQL test app,
 * `<name>_mig_<hex>` for the migration test, and Redis keys under `t:<hex>:`.
 * One run at a time per TEST_DATABASE_URL / TEST_REDIS_URL database.
 */
export const TEMPLATE_SUFFIX = '_tpl';
export type TestDatabaseKind = 't' | 'mig';
const TEST_DATABASE_KINDS: TestDatabaseKind[] = ['t', 'mig'];
const HEX_CHARS = 12;
/** PostgreSQL truncates identifiers to 63 bytes (NAMEDATALEN - 1). */
const MAX_IDENTIFIER_BYTES = 63;
const LONGEST_SUFFIX_BYTES = Math.max(
  TEMPLATE_SUFFIX.length,
  ...TEST_DATABASE_KINDS.map((kind) => `_${kind}_`.length + HEX_CHARS),
);
export const TEST_KEY_PATTERN = 't:*';
const TEST_KEY_PREFIX = /^t:[0-9a-f]{12}:/;

const randomHex = () => randomBytes(HEX_CHARS / 2).toString('hex');

/** Whether `CI` is set (to anything but "" / "0" / "false"): then nothing may be skipped for want of setup. */
export function inCi(): boolean {
  const value = process.env.CI ?? '';
  return value !== '' && value !== '0' && value.toLowerCase() !== 'false';
}

/** The database TEST_DATABASE_URL names, which every test database's name starts with. */
export function baseDatabaseName(databaseUrl = process.env.TEST_DATABASE_URL as string): string {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
  if (name === '') throw new Error(`TEST_DATABASE_URL must name a database: ${databaseUrl}`);
  const room = MAX_IDENTIFIER_BYTES - LONGEST_SUFFIX_BYTES;
  if (Buffer.byteLength(name) > room) {
    throw new Error(
      `TEST_DATABASE_URL's database "${name}" is ${Buffer.byteLength(name)} bytes long; the test ` +
        `databases are named after it (e.g. "${name}_mig_<12 hex>") and PostgreSQL cuts names ` +
        `at ${MAX_IDENTIFIER_BYTES} bytes: use a name of at most ${room} bytes`,
    );
  }
  return name;
}

export function testDatabaseName(kind: TestDatabaseKind): string {
  return `${baseDatabaseName()}_${kind}_${randomHex()}`;
}

/** Whether `name` is one of the databases a run against `base` makes (the template aside). */
export function isTestDatabaseName(base: string, name: string): boolean {
  const tail = name.startsWith(`${base}_`) ? name.slice(base.length + 1) : '';
  return new RegExp(`^(${TEST_DATABASE_KINDS.join('|')})_[0-9a-f]{${HEX_CHARS}}$`).test(tail);
}

/** The URL of another database on TEST_DATABASE_URL's server. */
export function databaseUrlFor(name: string): string {
  const url = new URL(process.env.TEST_DATABASE_URL as string);
  url.pathname = `/${encodeURIComponent(name)}`;
  return url.toString();
}

/** A fresh Redis key prefix for one test's keys: `t:<12 hex>:`. */
export function newTestKeyPrefix(): string {
  return `t:${randomHex()}:`;
}

/** Every key matching `pattern` (a SCAN MATCH glob) in TEST_REDIS_URL's database, on a connection of its own. */
export async function listTestKeys(pattern: string): Promise<string[]> {
  const redis = new Redis(process.env.TEST_REDIS_URL as string, { maxRetriesPerRequest: 1 });
  const keys: string[] = [];
  try {
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
  return keys;
}

/**
 * Deletes the keys matching `pattern` and `which` in TEST_REDIS_URL's database;
 * answers them. Never FLUSHDB: the database may hold keys that are not ours.
 */
export async function deleteTestKeys(
  pattern: string,
  which: (key: string) => boolean = () => true,
): Promise<string[]> {
  const keys = (await listTestKeys(pattern)).filter(which);
  if (keys.length === 0) return keys;
  const redis = new Redis(process.env.TEST_REDIS_URL as string, { maxRetriesPerRequest: 1 });
  try {
    for (let i = 0; i < keys.length; i += 1000) await redis.unlink(...keys.slice(i, i + 1000));
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
  return keys;
}

/** Whether a key is in some test's `t:<12 hex>:` namespace. */
export function isTestKey(key: string): boolean {
  return TEST_KEY_PREFIX.test(key);
}

/** An empty PostgreSQL database (no migrations), named as test databases are; `drop` removes it. */
export async function createEmptyTestDatabase(): Promise<{
  url: string;
  drop: () => Promise<void>;
}> {
  const admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  await admin.connect();
  const name = testDatabaseName('mig');
  try {
    await admin.query(`create database ${pg.escapeIdentifier(name)}`);
  } catch (error) {
    await admin.end().catch(() => {});
    throw error;
  }
  return {
    url: databaseUrlFor(name),
    drop: async () => {
      try {
        await admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
      } finally {
        await admin.end().catch(() => {});
      }
    },
  };
}

/** A new PostgreSQL database per app, copied from the migrated template made by global setup. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const base = baseDatabaseName();
  const admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  await admin.connect();
  const template = `${base}${TEMPLATE_SUFFIX}`;
  const name = testDatabaseName('t');
  try {
    // Two CREATE DATABASE from one template at the same instant can fail; retry briefly.
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(
          `create database ${pg.escapeIdentifier(name)} template ${pg.escapeIdentifier(template)}`,
        );
        break;
      } catch (error) {
        if (attempt >= 20) throw error;
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
      }
    }
  } catch (error) {
    await admin.end().catch(() => {});
    throw error;
  }
  let dropped: Promise<void> | undefined;
  return {
    url: databaseUrlFor(name),
    drop: () => {
      dropped ??= (async () => {
        try {
          await admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
        } finally {
          await admin.end().catch(() => {});
        }
      })();
      return dropped;
    },
  };
}

async function freshPostgres(): Promise<{
  database: Database;
  url: string;
  drop: () => Promise<void>;
}> {
  const created = await createTestDatabase();
  let database: Database;
  try {
    database = await openDatabase({
      url: created.url,
      dataDir: '',
      poolSize: 20,
      logger: pino({ level: 'silent' }),
    });
  } catch (error) {
    await created.drop();
    throw error;
  }
  return {
    database,
    url: created.url,
    drop: async () => {
      try {
        await database.close();
      } finally {
        await created.drop();
      }
    },
  };
}

export type TestAppOptions = {
  backend?: Backend;
  /** `manual`: the webhook worker runs only when the test calls `app.webhooks.runOnce()`. */
  webhookWorker?: 'background' | 'manual';
  env?: Record<string, string>;
  clock?: FakeClock;
  sms?: FakeSms;
  /** Share storage with another test app (two instances of one deployment). */
  shareWith?: TestApp;
  /** Where the app logs (default: a logger at LOG_LEVEL, silent in tests). */
  logger?: Logger;
  /** Puts something between this instance and its store (to make it fail on purpose). */
  wrapStore?: DepsOverrides['wrapStore'];
  /** Other parts createDeps would make (randomness, metrics). */
  overrides?: Pick<DepsOverrides, 'random' | 'metrics'>;
};

export type TestApp = {
  app: App;
  config: Config;
  deps: Deps;
  clock: FakeClock;
  sms: FakeSms;
  backend: Backend;
  /** Where a second instance of this deployment finds the same storage. */
  storage: { databaseUrl?: string; redisKeyPrefix?: string };
  close(): Promise<void>;
};

export async function createTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const backend = options.backend ?? options.shareWith?.backend ?? 'embedded';
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    SMS_CONSOLE_DELAY_MS: '0',
    SECRET_KEY: 'test-secret-key-0123456789abcdef0123456789',
    // Every request of app.inject comes from 127.0.0.1: the per-IP and global
    // caps are opened here and tested on their own in limits.test.ts.
    OTP_MAX_PER_IP_PER_HOUR: '0',
    OTP_MAX_VERIFY_PER_IP_PER_HOUR: '0',
    SMS_MAX_PER_HOUR: '0',
    ...options.env,
  });
  const clock = options.clock ?? options.shareWith?.clock ?? new FakeClock();
  const sms = options.sms ?? options.shareWith?.sms ?? new FakeSms();
  const logger = options.logger ?? pino({ level: config.LOG_LEVEL });
  // Undone in reverse order on close, or as soon as a later step of the set-up fails.
  const cleanups: (() => Promise<void>)[] = [];
  const cleanUp = async () => {
    const errors: unknown[] = [];
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((error: unknown) => errors.push(error));
    }
    if (errors.length > 0) throw errors[0];
  };
  try {
    let database: Database;
    let store: KeyValueStore;
    let storage: TestApp['storage'] = {};
    const shared = options.shareWith?.storage;
    if (options.shareWith && backend === 'postgres' && shared?.databaseUrl) {
      // A real second instance: its own pool and its own Redis connection.
      storage = shared;
      const prefix = shared.redisKeyPrefix ?? '';
      // Whichever instance closes last deletes the keys both made.
      if (prefix !== '') cleanups.push(async () => void (await deleteTestKeys(`${prefix}*`)));
      const ownDatabase = await openDatabase({
        url: shared.databaseUrl,
        dataDir: '',
        poolSize: 20,
        logger,
      });
      cleanups.push(() => ownDatabase.close());
      const ownRedis = await RedisStore.connect({
        url: process.env.TEST_REDIS_URL as string,
        logger,
        keyPrefix: prefix,
      });
      cleanups.push(() => ownRedis.close());
      database = ownDatabase;
      store = ownRedis;
    } else if (options.shareWith) {
      // The embedded default is one process: instances share its engine and memory.
      database = options.shareWith.deps.database;
      store = options.shareWith.deps.store;
    } else if (backend === 'postgres') {
      const fresh = await freshPostgres();
      cleanups.push(fresh.drop);
      database = fresh.database;
      const prefix = newTestKeyPrefix();
      storage = { databaseUrl: fresh.url, redisKeyPrefix: prefix };
      // After the store is closed, so that nothing writes a key once they are deleted.
      cleanups.push(async () => void (await deleteTestKeys(`${prefix}*`)));
      const redis = await RedisStore.connect({
        url: process.env.TEST_REDIS_URL as string,
        logger,
        keyPrefix: prefix,
      });
      cleanups.push(() => redis.close());
      store = redis;
    } else {
      database = await freshPglite();
      const memory = new MemoryStore(clock);
      cleanups.push(() => memory.close());
      store = memory;
    }
    // The service's own wiring, with this test's storage, clock, SMS and logger.
    const deps = await createDeps(config, {
      ...options.overrides,
      logger,
      clock,
      sms,
      database,
      store,
      wrapStore: options.wrapStore,
    });
    const app = await buildApp(deps, { webhookWorker: options.webhookWorker });
    cleanups.push(() => app.close());
    await app.ready();
    let closed: Promise<void> | undefined;
    return {
      app,
      config,
      deps,
      clock,
      sms,
      backend,
      storage,
      close: () => {
        closed ??= cleanUp();
        return closed;
      },
    };
  } catch (error) {
    await cleanUp().catch(() => {});
    throw error;
  }
}

let phoneCounter = 0;
/** A distinct valid Russian mobile number per call. */
export function nextPhone(): string {
  phoneCounter += 1;
  return `+7999${String(Math.floor(Math.random() * 1000) * 1000 + (phoneCounter % 1000)).padStart(7, '0')}`;
}

export async function requestCode(t: TestApp, phone: string): Promise<string> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/auth/request-code/',
    payload: { phone_number: phone },
  });
  if (res.statusCode !== 200) throw new Error(`request-code ${res.statusCode}: ${res.body}`);
  return res.json().dev_code;
}

export type SignedIn = {
  token: string;
  user: { id: number; phone_number: string; invite_code: string };
};

export async function signIn(t: TestApp, phone = nextPhone()): Promise<SignedIn> {
  const code = await requestCode(t, phone);
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/auth/verify-code/',
    payload: { phone_number: phone, code },
  });
  if (res.statusCode !== 200) throw new Error(`verify-code ${res.statusCode}: ${res.body}`);
  return res.json();
}

export function auth(token: string): Record<string, string> {
  return { authorization: `Token ${token}` };
}

/** Randomness that yields the given alphabet indexes in turn, so that a collision can be forced. */
export function scriptedRandom(indexes: number[]): Random {
  let i = 0;
  return {
    bytes: (length) => Buffer.alloc(length),
    int: () => indexes[i++ % indexes.length] as number,
  };
}
