import pg from 'pg';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../src/db/client.js';
import { createEmptyTestDatabase } from '../helper.js';

const baseUrl = process.env.TEST_DATABASE_URL;

describe.skipIf(!baseUrl)('migrations on PostgreSQL (postgres)', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** An empty database, dropped after the test however it ends. */
  async function emptyDatabase(): Promise<string> {
    const created = await createEmptyTestDatabase();
    cleanups.push(created.drop);
    return created.url;
  }

  it('instances starting together apply them once, under the advisory lock', async () => {
    const url = await emptyDatabase();
    const logger = pino({ level: 'silent' });
    const instances: Database[] = [];
    cleanups.push(() => Promise.all(instances.map((db) => db.close())));
    for (let i = 0; i < 4; i++) {
      instances.push(await openDatabase({ url, dataDir: '', poolSize: 2, logger }));
    }
    const counts = await Promise.all(instances.map((db) => db.migrate()));
    const check = new pg.Client({ connectionString: url });
    await check.connect();
    cleanups.push(() => check.end());
    const applied = await check.query(
      'select count(*)::int as n from drizzle.__drizzle_migrations',
    );
    const tables = await check.query(
      "select table_name from information_schema.tables where table_schema = 'public' order by 1",
    );
    expect(applied.rows[0].n).toBeGreaterThanOrEqual(1);
    // One instance applied them all; each of the others found none left.
    expect(counts.sort()).toEqual([0, 0, 0, applied.rows[0].n]);
    expect(tables.rows.map((r) => r.table_name)).toEqual([
      'api_tokens',
      'audit_log',
      'events',
      'user_totals',
      'users',
      'webhook_deliveries',
    ]);
    // Running again is a no-op.
    expect(await instances[0]?.migrate()).toBe(0);
  });
});
