import { readFileSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type Database, openDatabase } from '../../src/db/client.js';
import { migrationsFolder } from '../../src/db/migrations.js';
import { pgliteStartParams, wrapPglite } from '../../src/db/pglite.js';
import type { Replanning } from '../../src/db/plan-once.js';
import { rowsOf, textArray } from '../../src/db/sql-helpers.js';
import { type Backend, backends, createEmptyTestDatabase, createTestDatabase } from '../helper.js';

const logger = pino({ level: 'silent' });

/** The migrations in drizzle/, as drizzle's journal lists them. */
const migrationCount = (
  JSON.parse(readFileSync(`${migrationsFolder}/meta/_journal.json`, 'utf8')) as {
    entries: unknown[];
  }
).entries.length;

/**
 * The `Database` interface, one contract for both adapters (src/db/pglite.ts
 * and src/db/postgres.ts): named hot-path statements, transactions, errors,
 * ping and migrations.
 */
describe.each(backends)('the Database contract (%s)', (backend: Backend) => {
  const cleanups: (() => Promise<unknown>)[] = [];

  /** A migrated database; `poolSize` bounds PostgreSQL's connections (PGlite has one session). */
  async function open(poolSize = 4, replanning?: Replanning): Promise<Database> {
    if (backend === 'embedded') {
      const database = await openDatabase({
        url: 'memory://',
        dataDir: '',
        poolSize,
        logger,
        replanning,
      });
      cleanups.push(() => database.close().catch(() => {}));
      await database.migrate();
      return database;
    }
    const created = await createTestDatabase();
    const database = await openDatabase({
      url: created.url,
      dataDir: '',
      poolSize,
      logger,
      replanning,
    });
    cleanups.push(async () => {
      await database.close().catch(() => {});
      await created.drop();
    });
    return database;
  }

  /** A database with no schema at all, as on a first start without the PGlite seed. */
  async function openEmpty(): Promise<Database> {
    if (backend === 'embedded') {
      const database = wrapPglite(await PGlite.create({ startParams: pgliteStartParams }));
      cleanups.push(() => database.close().catch(() => {}));
      return database;
    }
    const created = await createEmptyTestDatabase();
    cleanups.push(created.drop);
    const database = await openDatabase({
      url: created.url,
      dataDir: '',
      poolSize: 1,
      logger,
    });
    cleanups.push(() => database.close().catch(() => {}));
    return database;
  }

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('binds and parses text, bytes, times, arrays, numbers and nulls, run after run', async () => {
    // One connection, so that PostgreSQL's pg_prepared_statements below is the one it ran on.
    const database = await open(1);
    const text = `select $1::bytea as bytes, $2::timestamptz as at, $3::text[] as list,
                    $4::int + 1 as next, $5::text as nothing, $6::text as phone,
                    $7::bigint[] as ids`;
    for (const n of [1, 2, 3]) {
      const at = new Date(Date.UTC(2026, 0, n, 12, 30, 15, 250));
      const [row] = await database.query<{
        bytes: Uint8Array;
        at: Date;
        list: string[];
        next: number;
        nothing: string | null;
        phone: string;
        ids: string[];
      }>('round_trip', text, [
        Buffer.from([0, n, 255]),
        at,
        ['a', 'b "c"', `${n}`],
        n,
        null,
        `+7999000000${n}`,
        [n, 2 ** 40 + n],
      ]);
      expect(Buffer.from(row?.bytes ?? [])).toEqual(Buffer.from([0, n, 255]));
      expect(row?.phone).toBe(`+7999000000${n}`);
      expect(row?.ids?.map(String)).toEqual([String(n), String(2 ** 40 + n)]);
      expect(row?.at).toEqual(at);
      expect(row?.list).toEqual(['a', 'b "c"', `${n}`]);
      expect(row?.next).toBe(n + 1);
      expect(row?.nothing).toBeNull();
    }
    // Prepared once in the session, not once per run: PGlite's engine, or the pool's one connection.
    const prepared = await database.query<{ n: number }>(
      'prepared_count',
      "select count(*)::int as n from pg_prepared_statements where name = 'round_trip'",
      [],
    );
    expect(prepared[0]?.n).toBe(1);
  });

  it('plans a named statement once, not for each run’s values (PLAN_ONCE)', async () => {
    const database = await open(1);
    // Left to choose, PostgreSQL plans the first five runs for their values,
    // then goes on so whenever that looks cheaper (for many of ours, always).
    const text = `select u.id from unnest($1::bigint[]) as t(id)
                  join users u on u.id = t.id where u.created_at >= $2 and u.created_at < $3`;
    for (let run = 0; run < 8; run++) {
      await database.query('planned_once', text, [[run], new Date(0), new Date()]);
    }
    const [plans] = await database.query<{ generic: number; custom: number }>(
      'plans_count',
      `select generic_plans::int as generic, custom_plans::int as custom
       from pg_prepared_statements where name = 'planned_once'`,
      [],
    );
    expect(plans).toEqual({ generic: 8, custom: 0 });
  });

  it('plans a named statement anew once its plan is as old as REPLANNING says', async () => {
    let nowMs = 0;
    // 20 s, under the pool's 30 s for an idle connection, which ends it too.
    const database = await open(1, { afterMs: 20_000, clock: { now: () => new Date(nowMs) } });
    // PostgreSQL's pool ends a connection when its lifetime's timer fires;
    // PGlite reads the clock. The statement reads its own preparation's time.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    cleanups.push(async () => vi.useRealTimers());
    const preparedAt = async () => {
      const [row] = await database.query<{ at: string }>(
        'replanned',
        "select prepare_time::text as at from pg_prepared_statements where name = 'replanned'",
        [],
      );
      return row?.at;
    };
    const first = await preparedAt();
    expect(first).toBeDefined();
    nowMs += 19_000;
    vi.advanceTimersByTime(19_000);
    expect(await preparedAt()).toBe(first);
    nowMs += 1_000;
    vi.advanceTimersByTime(1_000);
    const again = await preparedAt();
    expect(again).toBeDefined();
    expect(again).not.toBe(first);
    expect(await preparedAt()).toBe(again);
  });

  it('reads and writes the tables with the hot-path parameter types', async () => {
    const database = await open();
    const createdAt = new Date(Date.UTC(2026, 5, 1, 8, 0, 0, 125));
    const insert =
      'insert into users (phone_number, invite_code, created_at) values ($1, $2, $3) returning id';
    const [user] = await database.query<{ id: number | string }>('contract_insert_user', insert, [
      '+79990001122',
      'ABC123',
      createdAt,
    ]);
    expect(user?.id).toBeDefined();
    const select =
      'select phone_number, created_at, referrer_id from users where id = any($1::bigint[])';
    const rows = await database.query<{
      phone_number: string;
      created_at: Date;
      referrer_id: number | null;
    }>('contract_select_users', select, [[user?.id]]);
    expect(rows).toEqual([
      { phone_number: '+79990001122', created_at: createdAt, referrer_id: null },
    ]);
  });

  it('answers no rows as an empty list', async () => {
    const database = await open();
    const rows = await database.query('none', 'select 1 as one where $1::int > 1', [0]);
    expect(rows).toEqual([]);
  });

  it('refuses a name already prepared with another text', async () => {
    const database = await open();
    await database.query('twice', 'select 1 as one', []);
    await expect(database.query('twice', 'select 2 as two', [])).rejects.toThrow();
    expect(await database.query('twice', 'select 1 as one', [])).toEqual([{ one: 1 }]);
  });

  it('rejects with the database error, then runs the next statement', async () => {
    const database = await open();
    const divide = 'select 10 / $1::int as quotient';
    await expect(database.query('divide', divide, [0])).rejects.toMatchObject({ code: '22012' });
    expect(await database.query('divide', divide, [5])).toEqual([{ quotient: 2 }]);
    await expect(database.query('broken', 'select from nowhere where', [])).rejects.toMatchObject({
      code: '42601',
    });
    expect(await database.query('after', 'select 3 as three', [])).toEqual([{ three: 3 }]);
  });

  it('rejects once the database is closed', async () => {
    const database = await open();
    expect(await database.query('open', 'select 1 as one', [])).toEqual([{ one: 1 }]);
    await database.close();
    await expect(database.query('open', 'select 1 as one', [])).rejects.toThrow();
  });

  it('never runs inside a transaction that another caller has open', async () => {
    const database = await open();
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered = () => {};
    const inside = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const transaction = database.db.transaction(async (tx) => {
      await tx.execute(sql`select set_config('app.marker', 'inside', true)`);
      entered();
      await held;
    });
    await inside;
    const marker = database.query<{ value: string | null }>(
      'marker',
      "select current_setting('app.marker', true) as value",
      [],
    );
    release();
    await transaction;
    const [row] = await marker;
    expect(row?.value ?? '').toBe('');
  });

  it('textArray and rowsOf: any strings go as one text[] value, and come back as they were', async () => {
    const database = await open();
    const values = [
      'plain',
      'with "quotes"',
      'back\\slash',
      'comma,and {braces}',
      '',
      'NULL',
      ' spaced ',
    ];
    const result = await database.db.execute(
      sql`select ${textArray(values)} as values, cardinality(${textArray([])}) as none`,
    );
    expect(rowsOf<{ values: string[]; none: number }>(result)).toEqual([{ values, none: 0 }]);
  });

  it('pings while open, and refuses once closed', async () => {
    const database = await open();
    await expect(database.ping()).resolves.toBeUndefined();
    await database.close();
    await expect(database.ping()).rejects.toThrow();
  });

  it('migrate answers how many migrations it applied: all of them, then none', async () => {
    const database = await openEmpty();
    expect(migrationCount).toBeGreaterThanOrEqual(1);
    expect(await database.migrate()).toBe(migrationCount);
    expect(await database.migrate()).toBe(0);
    const tables = await database.query<{ name: string }>(
      'contract_tables',
      "select table_name as name from information_schema.tables where table_schema = 'public' order by 1",
      [],
    );
    expect(tables.map((t) => t.name)).toContain('users');
  });
});
