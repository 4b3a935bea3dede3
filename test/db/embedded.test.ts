import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../../src/db/client.js';
import { pgliteSeedDir } from '../../src/db/pglite.js';

const logger = pino({ level: 'silent' });

/** The tables and applied migrations of an open database, without migrating it. */
async function contents(database: Database) {
  const tables = await database.query<{ table_name: string }>(
    'tables',
    "select table_name from information_schema.tables where table_schema = 'public' order by 1",
    [],
  );
  const applied = await database.query<{ n: number }>(
    'applied',
    'select count(*)::int as n from drizzle.__drizzle_migrations',
    [],
  );
  return { tables: tables.map((t) => t.table_name), migrations: applied[0]?.n };
}

describe('embedded database under DATA_DIR (pglite)', () => {
  const dirs: string[] = [];
  const opened: Database[] = [];
  const open = async (dataDir: string) => {
    const database = await openDatabase({ url: undefined, dataDir, poolSize: 1, logger });
    opened.push(database);
    return database;
  };
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'referral-embedded-'));
    dirs.push(dir);
    return dir;
  };

  afterEach(async () => {
    for (const database of opened.splice(0)) await database.close();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('a new DATA_DIR starts as a copy of the migrated seed', async () => {
    expect(existsSync(pgliteSeedDir), 'npm run build writes the seed').toBe(true);
    const dataDir = join(tempDir(), 'data');

    const database = await open(dataDir);

    expect(existsSync(join(dataDir, 'PG_VERSION'))).toBe(true);
    const { tables, migrations } = await contents(database);
    expect(tables).toEqual([
      'api_tokens',
      'audit_log',
      'events',
      'user_totals',
      'users',
      'webhook_deliveries',
    ]);
    expect(migrations).toBeGreaterThanOrEqual(1);
    // Migrating again finds nothing to do, and the data is kept across a reopen.
    expect(await database.migrate()).toBe(0);
    await database.query(
      'insert',
      "insert into users (phone_number, invite_code, created_at) values ($1, 'ABC123', now())",
      ['+79990000001'],
    );
    await database.close();
    const again = await open(dataDir);
    const rows = await again.query<{ n: number }>(
      'count',
      'select count(*)::int as n from users',
      [],
    );
    expect(rows[0]?.n).toBe(1);
  });

  it('a copy cut short (no PG_VERSION yet) is made again at the next start', async () => {
    const dataDir = join(tempDir(), 'data');
    cpSync(join(pgliteSeedDir, 'base'), join(dataDir, 'base'), { recursive: true });

    const database = await open(dataDir);

    expect(await contents(database)).toEqual({
      tables: ['api_tokens', 'audit_log', 'events', 'user_totals', 'users', 'webhook_deliveries'],
      migrations: expect.any(Number),
    });
  });
});
