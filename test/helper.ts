import { randomBytes } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import pino from 'pino';
import { type App, type AppOptions, buildApp } from '../src/app.js';
import { createSendLimiter } from '../src/auth/create-send-limiter.js';
import { type Config, loadConfig } from '../src/config.js';
import {
  type Database,
  loadPgliteSeed,
  openDatabase,
  pgliteStartParams,
  wrapPglite,
} from '../src/db/client.js';
import type { Deps } from '../src/deps.js';
import type { Clock } from '../src/lib/clock.js';
import { cryptoRandom, type Random } from '../src/lib/random.js';
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
  await client.exec('truncate table api_tokens, users, audit_log restart identity cascade');
  return wrapPglite(client, false);
}

export const TEMPLATE_SUFFIX = '_tpl';

/** A new PostgreSQL database per app, copied from the migrated template made by global setup. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const baseUrl = process.env.TEST_DATABASE_URL as string;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  const template = `${new URL(baseUrl).pathname.slice(1)}${TEMPLATE_SUFFIX}`;
  const name = `t_${randomBytes(6).toString('hex')}`;
  // Two CREATE DATABASE from one template at the same instant can fail; retry briefly.
  for (let attempt = 0; ; attempt++) {
    try {
      await admin.query(`create database "${name}" template "${template}"`);
      break;
    } catch (error) {
      if (attempt >= 20) throw error;
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
    }
  }
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await admin.query(`drop database if exists "${name}" with (force)`);
      await admin.end();
    },
  };
}

async function freshPostgres(): Promise<{
  database: Database;
  url: string;
  drop: () => Promise<void>;
}> {
  const created = await createTestDatabase();
  const database = await openDatabase({
    url: created.url,
    dataDir: '',
    poolSize: 20,
    logger: pino({ level: 'silent' }),
  });
  return {
    database,
    url: created.url,
    drop: async () => {
      await database.close();
      await created.drop();
    },
  };
}

export type TestAppOptions = {
  backend?: Backend;
  env?: Record<string, string>;
  clock?: FakeClock;
  sms?: FakeSms;
  /** Share storage with another test app (two instances of one deployment). */
  shareWith?: TestApp;
  /** Use the configured send limits (default: the ones createSendLimiter builds from env). */
  appOptions?: AppOptions;
  /** Puts something between this instance and its store (to make it fail on purpose). */
  wrapStore?: (store: KeyValueStore) => KeyValueStore;
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
    SMS_MAX_PER_HOUR: '0',
    ...options.env,
  });
  const clock = options.clock ?? options.shareWith?.clock ?? new FakeClock();
  const sms = options.sms ?? options.shareWith?.sms ?? new FakeSms();
  const logger = pino({ level: config.LOG_LEVEL });
  const cleanups: (() => Promise<void>)[] = [];
  let database: Database;
  let store: KeyValueStore;
  let storage: TestApp['storage'] = {};
  const shared = options.shareWith?.storage;
  if (options.shareWith && backend === 'postgres' && shared?.databaseUrl) {
    // A real second instance: its own pool and its own Redis connection.
    storage = shared;
    const ownDatabase = await openDatabase({
      url: shared.databaseUrl,
      dataDir: '',
      poolSize: 20,
      logger,
    });
    const ownRedis = await RedisStore.connect({
      url: process.env.TEST_REDIS_URL as string,
      logger,
      keyPrefix: shared.redisKeyPrefix ?? '',
    });
    database = ownDatabase;
    store = ownRedis;
    cleanups.push(
      () => ownRedis.close(),
      () => ownDatabase.close(),
    );
  } else if (options.shareWith) {
    // The embedded default is one process: instances share its engine and memory.
    database = options.shareWith.deps.database;
    store = options.shareWith.deps.store;
  } else if (backend === 'postgres') {
    const fresh = await freshPostgres();
    database = fresh.database;
    const prefix = `t:${randomBytes(6).toString('hex')}:`;
    storage = { databaseUrl: fresh.url, redisKeyPrefix: prefix };
    const redis = await RedisStore.connect({
      url: process.env.TEST_REDIS_URL as string,
      logger,
      keyPrefix: prefix,
    });
    store = redis;
    cleanups.push(() => redis.close(), fresh.drop);
  } else {
    database = await freshPglite();
    const memory = new MemoryStore(clock);
    store = memory;
    cleanups.push(() => memory.close());
  }
  if (options.wrapStore) store = options.wrapStore(store);
  const deps: Deps = { config, logger, clock, random: cryptoRandom, database, store, sms };
  const app = await buildApp(deps, options.appOptions ?? { limiter: createSendLimiter(deps) });
  await app.ready();
  return {
    app,
    config,
    deps,
    clock,
    sms,
    backend,
    storage,
    close: async () => {
      await app.close();
      for (const cleanup of cleanups) await cleanup();
    },
  };
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
