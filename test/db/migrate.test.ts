import { randomBytes } from 'node:crypto';
import pg from 'pg';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/client.js';

const baseUrl = process.env.TEST_DATABASE_URL;

describe.skipIf(!baseUrl)('migrations on PostgreSQL (postgres)', () => {
  it('instances starting together apply them once, under the advisory lock', async () => {
    const admin = new pg.Client({ connectionString: baseUrl });
    await admin.connect();
    const name = `mig_${randomBytes(6).toString('hex')}`;
    await admin.query(`create database "${name}"`);
    const url = new URL(baseUrl as string);
    url.pathname = `/${name}`;
    const logger = pino({ level: 'silent' });
    const instances = await Promise.all(
      Array.from({ length: 4 }, () =>
        openDatabase({ url: url.toString(), dataDir: '', poolSize: 2, logger }),
      ),
    );
    try {
      await Promise.all(instances.map((db) => db.migrate()));
      const check = new pg.Client({ connectionString: url.toString() });
      await check.connect();
      const applied = await check.query(
        'select count(*)::int as n from drizzle.__drizzle_migrations',
      );
      const tables = await check.query(
        "select table_name from information_schema.tables where table_schema = 'public' order by 1",
      );
      await check.end();
      expect(applied.rows[0].n).toBeGreaterThanOrEqual(1);
      expect(tables.rows.map((r) => r.table_name)).toEqual([
        'api_tokens',
        'audit_log',
        'user_totals',
        'users',
      ]);
      // Running again is a no-op.
      await instances[0]?.migrate();
    } finally {
      await Promise.all(instances.map((db) => db.close()));
      await admin.query(`drop database if exists "${name}" with (force)`);
      await admin.end();
    }
  });
});
