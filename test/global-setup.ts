import pg from 'pg';
import pino from 'pino';
import { openDatabase } from '../src/db/client.js';
import {
  baseDatabaseName,
  databaseUrlFor,
  deleteTestKeys,
  inCi,
  isTestDatabaseName,
  isTestKey,
  TEMPLATE_SUFFIX,
  TEST_KEY_PATTERN,
} from './helper.js';

const POSTGRES_VARIABLES = ['TEST_DATABASE_URL', 'TEST_REDIS_URL'] as const;

/**
 * Builds the migrated template database that each PostgreSQL test app copies,
 * and checks afterwards that the run left nothing behind: no test database and
 * no Redis key under `t:*` (each test deletes what it made, also when it fails).
 */
export default async function setup(): Promise<() => Promise<void>> {
  const missing = POSTGRES_VARIABLES.filter((name) => !process.env[name]);
  if (missing.length > 0) {
    if (inCi()) {
      throw new Error(
        `CI is set, so the suite must run on PostgreSQL and Redis too (the race tests run only ` +
          `there): set ${missing.join(' and ')} (.ci/run sets ${POSTGRES_VARIABLES.join(' and ')})`,
      );
    }
    if (missing.length < POSTGRES_VARIABLES.length) {
      console.warn(
        `${missing.join(' and ')} is not set: the PostgreSQL + Redis tests (the race tests among ` +
          `them) need both ${POSTGRES_VARIABLES.join(' and ')}, so they are skipped.`,
      );
    }
    return async () => {};
  }
  const base = baseDatabaseName();
  const template = `${base}${TEMPLATE_SUFFIX}`;
  const admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  await admin.connect();

  // An interrupted run (killed before its hooks ran) leaves its databases and keys: start clean.
  const stale = [...(await dropTestDatabases(admin, base)), ...(await deleteAllTestKeys())];
  if (stale.length > 0) {
    console.warn(`Removed what an earlier, interrupted run left: ${summarise(stale)}`);
  }

  await admin.query(`drop database if exists ${pg.escapeIdentifier(template)} with (force)`);
  await admin.query(`create database ${pg.escapeIdentifier(template)}`);
  const database = await openDatabase({
    url: databaseUrlFor(template),
    dataDir: '',
    poolSize: 1,
    logger: pino({ level: 'silent' }),
  });
  await database.migrate();
  await database.close();

  return async () => {
    try {
      await admin.query(`drop database if exists ${pg.escapeIdentifier(template)} with (force)`);
      const leaked = [...(await dropTestDatabases(admin, base)), ...(await deleteAllTestKeys())];
      if (leaked.length > 0) {
        // Vitest only logs an error thrown here and still exits 0: the exit code makes it count.
        process.exitCode = 1;
        throw new Error(
          'The tests left these behind in PostgreSQL / Redis (now removed); ' +
            `every test must delete what it makes, also when it fails: ${summarise(leaked)}`,
        );
      }
    } finally {
      await admin.end();
    }
  };
}

/** Drops the databases a run against `base` makes; answers their names. */
async function dropTestDatabases(admin: pg.Client, base: string): Promise<string[]> {
  const { rows } = await admin.query<{ datname: string }>('select datname from pg_database');
  const names = rows.map((r) => r.datname).filter((name) => isTestDatabaseName(base, name));
  for (const name of names) {
    await admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
  }
  return names.map((name) => `database ${name}`);
}

/** Deletes every key of every test (`t:<hex>:…`); answers them counted by prefix. */
async function deleteAllTestKeys(): Promise<string[]> {
  const counts = new Map<string, number>();
  for (const key of await deleteTestKeys(TEST_KEY_PATTERN, isTestKey)) {
    const prefix = key.slice(0, key.indexOf(':', 2) + 1);
    counts.set(prefix, (counts.get(prefix) ?? 0) + 1);
  }
  return [...counts].map(([prefix, n]) => `${n} Redis keys under ${prefix}`);
}

function summarise(things: string[]): string {
  const shown = things.slice(0, 10).join(', ');
  return things.length > 10 ? `${shown} and ${things.length - 10} more` : shown;
}
