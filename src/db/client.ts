import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import type { Logger } from 'pino';
import { openPgliteDataDir, openPgliteInMemory } from './pglite.js';
import type { Replanning } from './plan-once.js';
import { openPostgres } from './postgres.js';
import type * as schema from './schema.js';

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  kind: 'pglite' | 'postgres';
  /**
   * Runs one hot-path statement by name. It is prepared and planned once per
   * PostgreSQL connection or PGlite engine (PLAN_ONCE), and again a minute
   * later (REPLANNING), so repeated requests skip parsing and planning:
   * write it so that its one plan suits every value of its parameters and
   * every size of its tables (src/db/plan-once.ts).
   */
  query<Row = Record<string, unknown>>(
    name: string,
    text: string,
    params: unknown[],
  ): Promise<Row[]>;
  /**
   * Applies pending migrations and answers how many it applied (0: the schema
   * was up to date); safe when several instances start at once.
   */
  migrate(): Promise<number>;
  /** Throws when the database cannot answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export type DatabaseOptions = {
  /** postgres://…, memory://, or undefined for PGlite under dataDir. */
  url: string | undefined;
  dataDir: string;
  poolSize: number;
  logger: Logger;
  /** When a statement is planned anew (REPLANNING; sooner in tests). */
  replanning?: Replanning;
};

/** PostgreSQL for a postgres:// URL (src/db/postgres.ts), else PGlite (src/db/pglite.ts). */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.url?.startsWith('postgres')) return await openPostgres(options.url, options);
  if (options.url === undefined) {
    return await openPgliteDataDir(options.dataDir, options.replanning);
  }
  return await openPgliteInMemory(options.replanning);
}
