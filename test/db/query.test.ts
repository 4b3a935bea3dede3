import { sql } from 'drizzle-orm';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../src/db/client.js';
import { type Backend, backends, createTestDatabase } from '../helper.js';

const logger = pino({ level: 'silent' });

/** Named hot-path statements (`Database.query`): one contract for PGlite and PostgreSQL. */
describe.each(backends)('named statements (%s)', (backend: Backend) => {
  const cleanups: (() => Promise<void>)[] = [];

  async function open(): Promise<Database> {
    if (backend === 'embedded') {
      const database = await openDatabase({ url: 'memory://', dataDir: '', poolSize: 1, logger });
      cleanups.push(() => database.close().catch(() => {}));
      return database;
    }
    const created = await createTestDatabase();
    const database = await openDatabase({ url: created.url, dataDir: '', poolSize: 4, logger });
    cleanups.push(async () => {
      await database.close().catch(() => {});
      await created.drop();
    });
    return database;
  }

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('binds and parses bytes, times, arrays, numbers and nulls, run after run', async () => {
    const database = await open();
    const text = `select $1::bytea as bytes, $2::timestamptz as at, $3::text[] as list,
                    $4::int + 1 as next, $5::text as nothing`;
    for (const n of [1, 2, 3]) {
      const at = new Date(Date.UTC(2026, 0, n, 12, 30, 15, 250));
      const [row] = await database.query<{
        bytes: Uint8Array;
        at: Date;
        list: string[];
        next: number;
        nothing: string | null;
      }>('round_trip', text, [Buffer.from([0, n, 255]), at, ['a', 'b "c"', `${n}`], n, null]);
      expect(Buffer.from(row?.bytes ?? [])).toEqual(Buffer.from([0, n, 255]));
      expect(row?.at).toEqual(at);
      expect(row?.list).toEqual(['a', 'b "c"', `${n}`]);
      expect(row?.next).toBe(n + 1);
      expect(row?.nothing).toBeNull();
    }
    if (backend === 'embedded') {
      // Prepared once in the engine's session, not once per run.
      const prepared = await database.query<{ n: number }>(
        'prepared_count',
        "select count(*)::int as n from pg_prepared_statements where name = 'round_trip'",
        [],
      );
      expect(prepared[0]?.n).toBe(1);
    }
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
});
