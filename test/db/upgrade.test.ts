import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { migrationsFolder } from '../../src/db/migrations.js';
import { pgliteStartParams } from '../../src/db/pglite.js';
import { REFERRALS_PAGE_SQL } from '../../src/referrals/referral-service.js';
import { createEmptyTestDatabase } from '../helper.js';

type Run = (sql: string) => Promise<Record<string, unknown>[]>;
/** Migrates to the last migration of `folder`. */
type Migrate = (folder: string) => Promise<void>;

const baseUrl = process.env.TEST_DATABASE_URL;

/** A copy of the migrations folder that ends before migration `tag`. */
function migrationsBefore(tag: string): string {
  const folder = mkdtempSync(join(tmpdir(), 'migrations-'));
  cpSync(migrationsFolder, folder, { recursive: true });
  const journalFile = join(folder, 'meta', '_journal.json');
  const journal = JSON.parse(readFileSync(journalFile, 'utf8')) as { entries: { tag: string }[] };
  const end = journal.entries.findIndex((entry) => entry.tag === tag);
  expect(end, tag).toBeGreaterThan(0);
  journal.entries = journal.entries.slice(0, end);
  writeFileSync(journalFile, JSON.stringify(journal));
  return folder;
}

describe('upgrading a database that has data', () => {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  const openers: Record<string, () => Promise<{ run: Run; migrate: Migrate }>> = {
    embedded: async () => {
      const client = await PGlite.create({ startParams: pgliteStartParams });
      cleanups.push(() => client.close());
      const db = drizzlePglite(client);
      return {
        run: async (sql) =>
          ((await client.exec(sql)).at(-1)?.rows ?? []) as Record<string, unknown>[],
        migrate: (folder) => migratePglite(db, { migrationsFolder: folder }),
      };
    },
    ...(baseUrl && {
      postgres: async () => {
        const created = await createEmptyTestDatabase();
        cleanups.push(created.drop);
        const client = new pg.Client({ connectionString: created.url });
        await client.connect();
        cleanups.push(() => client.end());
        const db = drizzlePg({ client });
        return {
          run: async (sql) => {
            // Several statements answer one result each: the last one's rows.
            const result = (await client.query(sql)) as pg.QueryResult | pg.QueryResult[];
            return (Array.isArray(result) ? result.at(-1) : result)?.rows ?? [];
          },
          migrate: (folder) => migratePg(db, { migrationsFolder: folder }),
        };
      },
    }),
  };

  /** A database migrated up to migration `tag`, not including it. */
  async function openBefore(open: () => Promise<{ run: Run; migrate: Migrate }>, tag: string) {
    const opened = await open();
    const before = migrationsBefore(tag);
    cleanups.push(() => rmSync(before, { recursive: true, force: true }));
    await opened.migrate(before);
    return opened;
  }

  for (const [backend, open] of Object.entries(openers)) {
    it(`0009 (${backend}): the last-digits index holds join time, id and number, and the matches are read from it alone`, async () => {
      const { run, migrate } = await openBefore(open, '0009_phone_search_covering');
      await run(`
        insert into users (id, phone_number, invite_code, created_at) values
          (1, '+79990001234', 'AAAAAA', '2026-01-01T00:00:00Z'),
          (2, '+79990005678', 'BBBBBB', '2026-01-02T00:00:00Z');`);
      await migrate(migrationsFolder);
      const indexes = await run(`
        select array_to_string(array(
            select pg_get_indexdef(i.indexrelid, k, true)
            from generate_series(i.indnkeyatts + 1, i.indnatts) k), ',') as included
        from pg_index i join pg_class c on c.oid = i.indexrelid
        where c.relname = 'users_phone_reversed_idx'`);
      expect(indexes).toEqual([{ included: 'created_at,id,phone_number' }]);
      await run('vacuum users');
      const plan = await run(`
        set enable_seqscan = off;
        set enable_bitmapscan = off;
        explain (analyze, costs off, timing off, summary off)
          select created_at, id from users
          where reverse(phone_number) ~>=~ '4321' and reverse(phone_number) ~<~ '4322'`);
      const lines = plan.map((row) => String(row['QUERY PLAN'])).join('\n');
      expect(lines).toContain('Index Only Scan using users_phone_reversed_idx');
      expect(lines).toContain('Heap Fetches: 0');
      expect(lines).toMatch(/actual rows=1(\.00)? loops=1/);
    });

    it(`0008 (${backend}): referrals activated before it get their JSON, and a page is read from users_referrer_seq_key alone`, async () => {
      const { run, migrate } = await openBefore(open, '0008_referral_pages');
      await run(`
        insert into users (id, phone_number, invite_code, created_at) values
          (1, '+79990000001', 'AAAAAA', '2026-01-01T00:00:00Z');
        insert into users (id, phone_number, invite_code, referrer_id, activated_at, referral_seq, created_at) values
          (2, '+79990000002', 'BBBBBB', 1, '2026-03-04 05:06:07.891999+03', 1, '2026-01-02T00:00:00Z'),
          (3, '+79990000003', 'CCCCCC', 1, '2026-03-05T00:00:00Z', 2, '2026-01-03T00:00:00Z');
        update users set referrals_count = 2 where id = 1;`);

      await migrate(migrationsFolder);

      expect(await run('select id::int as id, as_referral from users order by id')).toEqual([
        { id: 1, as_referral: null },
        {
          id: 2,
          as_referral: '{"phone_number":"+79990000002","activated_at":"2026-03-04T02:06:07.891Z"}',
        },
        {
          id: 3,
          as_referral: '{"phone_number":"+79990000003","activated_at":"2026-03-05T00:00:00.000Z"}',
        },
      ]);
      // A user activated after it, too: the column is made by PostgreSQL.
      await run(`
        insert into users (id, phone_number, invite_code, created_at) values
          (4, '+79990000004', 'DDDDDD', '2026-01-04T00:00:00Z');
        update users set referrer_id = 1, activated_at = '2026-03-06T01:02:03.004Z', referral_seq = 3
          where id = 4;`);
      expect(await run('select as_referral from users where id = 4')).toEqual([
        {
          as_referral: '{"phone_number":"+79990000004","activated_at":"2026-03-06T01:02:03.004Z"}',
        },
      ]);
      const indexes = await run(`
        select c.relname as name, i.indisunique as is_unique,
          array_to_string(array(
            select pg_get_indexdef(i.indexrelid, k, true)
            from generate_series(i.indnkeyatts + 1, i.indnatts) k), ',') as included
        from pg_index i join pg_class c on c.oid = i.indexrelid
        where c.relname = 'users_referrer_seq_key'`);
      expect(indexes).toEqual([
        { name: 'users_referrer_seq_key', is_unique: true, included: 'as_referral' },
      ]);
      // Once vacuumed, the service's page statement reads the index alone. Scans
      // of the table are off: on a table this small the planner would choose one.
      await run('vacuum users');
      const plan = await run(`
        set enable_seqscan = off;
        set enable_bitmapscan = off;
        prepare page(bigint, int, int) as ${REFERRALS_PAGE_SQL};
        explain (analyze, costs off, timing off, summary off) execute page(1, 0, 100)`);
      const lines = plan.map((row) => String(row['QUERY PLAN'])).join('\n');
      expect(lines).toContain('Index Only Scan using users_referrer_seq_key');
      expect(lines).toContain('Heap Fetches: 0');
      // Still one position per referrer.
      await expect(run('update users set referral_seq = 1 where id = 3')).rejects.toThrow(
        'users_referrer_seq_key',
      );
    });
  }
});
