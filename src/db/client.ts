import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { PGlite, parse as pgliteParse, protocol } from '@electric-sql/pglite';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import type { PoolClient } from 'pg';
import type { Logger } from 'pino';
import { isConnectionLost } from '../lib/pg-errors.js';
import { lockDataDir } from './data-dir-lock.js';
import * as schema from './schema.js';

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  kind: 'pglite' | 'postgres';
  /**
   * Runs one hot-path statement by name. It is prepared once per PostgreSQL
   * connection or PGlite engine, so repeated requests skip parsing and planning.
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

export const migrationsFolder = fileURLToPath(new URL('../../drizzle', import.meta.url));

// Any fixed 64-bit number works; every instance must use the same one.
const MIGRATION_LOCK_KEY = 7_366_290_512_001n;

/**
 * A migrated, empty PGlite database made by `npm install` (see
 * build-pglite-seed.ts). Creating a database from scratch runs initdb, which
 * takes seconds; copying this takes a fraction of that, so a first start
 * answers sooner. Without it (e.g. running from source) PGlite starts empty.
 * The directory is copied into a new DATA_DIR; the packed copy is loaded by
 * in-memory databases.
 */
export const pgliteSeedDir = fileURLToPath(new URL('../../dist/pglite-seed', import.meta.url));
export const pgliteSeedFile = fileURLToPath(
  new URL('../../dist/pglite-seed.tar.gz', import.meta.url),
);

export function loadPgliteSeed(): Blob | undefined {
  if (!existsSync(pgliteSeedFile)) return undefined;
  return new Blob([readFileSync(pgliteSeedFile)]);
}

/**
 * Copies the seed into an empty data directory. Copying files, rather than
 * having PGlite unpack the archive, keeps the unpacking out of its
 * WebAssembly memory, which never shrinks: a first start then takes the same
 * memory as any later one (about 180 MB instead of 320, measured in bench/).
 * PG_VERSION, by which a data directory is known, comes last, so a copy cut
 * short is made again at the next start.
 */
function copyPgliteSeed(dataDir: string): void {
  const marker = join(pgliteSeedDir, 'PG_VERSION');
  cpSync(pgliteSeedDir, dataDir, { recursive: true, filter: (source) => source !== marker });
  copyFileSync(marker, join(dataDir, 'PG_VERSION'));
}

export type DatabaseOptions = {
  /** postgres://…, memory://, or undefined for PGlite under dataDir. */
  url: string | undefined;
  dataDir: string;
  poolSize: number;
  logger: Logger;
};

/**
 * PostgreSQL's own page cache lives in PGlite's WebAssembly memory, inside our
 * process, and its default of 128 MB is touched at start: 16 MB halves the
 * embedded service's resident memory (about 320 -> 170 MB at start, measured
 * in bench/). Pages beyond it are still cached by the operating system.
 */
export const pgliteStartParams = [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'];

/**
 * Runs PGlite's WebAssembly on V8's baseline compiler (Liftoff) only. V8's
 * optimising tier recompiles the hot PostgreSQL functions in background
 * threads, and the memory those threads take stays with the process: under
 * load the embedded service held 207-241 MB with it and 162-197 MB without,
 * and started 0.15-0.2 s sooner; uncached reads were about 10% slower, sign-ins
 * no slower (bench/README.md). Set before the first PGlite module is compiled;
 * it touches only WebAssembly, so the PostgreSQL back-end never sets it.
 */
function useBaselineWasmCompiler(): void {
  setFlagsFromString('--liftoff-only');
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.url?.startsWith('postgres')) return await openPostgres(options.url, options);
  useBaselineWasmCompiler();
  if (options.url === undefined) return await openDataDir(options.dataDir);
  const seed = loadPgliteSeed();
  const client = await PGlite.create({
    startParams: pgliteStartParams,
    ...(seed ? { loadDataDir: seed } : {}),
  });
  return wrapPglite(client);
}

/**
 * PGlite under DATA_DIR, locked for this process until closed. The lock is
 * taken before anything in the directory is touched: a second process (the
 * service, migrate or the CLI) refuses here with a DataDirLockError and leaves
 * the data as the first one has it.
 */
async function openDataDir(dataDir: string): Promise<Database> {
  mkdirSync(dataDir, { recursive: true });
  const lock = await lockDataDir(dataDir);
  let client: PGlite;
  try {
    const fresh = !existsSync(join(dataDir, 'PG_VERSION'));
    if (fresh && existsSync(pgliteSeedDir)) copyPgliteSeed(dataDir);
    client = await PGlite.create(dataDir, { startParams: pgliteStartParams });
  } catch (error) {
    await lock.release();
    throw error;
  }
  const database = wrapPglite(client);
  return {
    ...database,
    close: async () => {
      try {
        await database.close();
      } finally {
        await lock.release();
      }
    },
  };
}

/** A statement prepared in a PGlite engine: its text, and a serializer per parameter. */
type PreparedStatement = { text: string; serializers: (Serializer | undefined)[] };

type Serializer = PGlite['serializers'][number];

/** Named statements prepared in each PGlite engine (an engine is one session, shared by its wrappers). */
const preparedByEngine = new WeakMap<PGlite, Map<string, PreparedStatement>>();

function preparedStatementsOf(client: PGlite): Map<string, PreparedStatement> {
  let statements = preparedByEngine.get(client);
  if (statements === undefined) {
    statements = new Map();
    preparedByEngine.set(client, statements);
  }
  return statements;
}

/**
 * Runs a named statement on PGlite, prepared once per engine, as on
 * PostgreSQL. PGlite's `query` parses and plans every statement and makes six
 * calls into its WebAssembly for it; this binds and executes in one call:
 * 204-220 µs against 479-536 µs for a one-row lookup (bench/README.md). It
 * takes the same two locks as `query`, so it never runs inside another
 * caller's transaction, and reads the answer with PGlite's own parsers.
 * `_runExclusive…` are PGlite's internal API: the tests run every hot-path
 * statement through here, so an upgrade that changes them fails there.
 */
function queryPrepared<Row>(
  client: PGlite,
  statements: Map<string, PreparedStatement>,
  name: string,
  text: string,
  params: unknown[],
): Promise<Row[]> {
  return client._runExclusiveTransaction(() =>
    client._runExclusiveQuery(async () => {
      let statement = statements.get(name);
      if (statement === undefined) {
        const { messages } = await client.execProtocol(
          Buffer.concat([
            protocol.serialize.parse({ name, text }),
            protocol.serialize.describe({ type: 'S', name }),
            protocol.serialize.sync(),
          ]),
        );
        const types = pgliteParse.parseDescribeStatementResults(messages);
        statement = { text, serializers: types.map((type) => client.serializers[type]) };
        statements.set(name, statement);
      } else if (statement.text !== text) {
        throw new Error(`statement ${name} is already prepared with another text`);
      }
      const { serializers } = statement;
      const values = params.map((value, index) => {
        if (value === null || value === undefined) return null;
        const serialize = serializers[index];
        return serialize ? (serialize(value) as string) : String(value);
      });
      const { messages } = await client.execProtocol(
        Buffer.concat([
          protocol.serialize.bind({ statement: name, values }),
          protocol.serialize.describe({ type: 'P' }),
          protocol.serialize.execute({}),
          protocol.serialize.sync(),
        ]),
      );
      await client.syncToFs();
      return (pgliteParse.parseResults(messages, client.parsers)[0]?.rows ?? []) as Row[];
    }),
  );
}

/** Wraps an existing PGlite instance (tests share one engine across apps). */
export function wrapPglite(client: PGlite, ownsClient = true): Database {
  const db = drizzlePglite({ client, schema }) as unknown as Db;
  const statements = preparedStatementsOf(client);
  return {
    db,
    kind: 'pglite',
    query: <Row>(name: string, text: string, params: unknown[]) =>
      queryPrepared<Row>(client, statements, name, text, params),
    // One process owns a PGlite engine (and its DATA_DIR, by the lock), so
    // no migration lock is needed here.
    migrate: async () => {
      const run = async (sql: string) => (await client.query<Record<string, unknown>>(sql)).rows;
      const before = await countAppliedMigrations(run);
      await migratePglite(db as never, { migrationsFolder });
      return (await countAppliedMigrations(run)) - before;
    },
    ping: async () => {
      await client.query('select 1');
    },
    close: async () => {
      if (ownsClient && !client.closed) await client.close();
    },
  };
}

/** Migrations recorded by drizzle in this database (0 before the first one). */
async function countAppliedMigrations(
  run: (sql: string) => Promise<Record<string, unknown>[]>,
): Promise<number> {
  const [table] = await run(
    "select to_regclass('drizzle.__drizzle_migrations') is not null as present",
  );
  if (!table?.present) return 0;
  const [row] = await run('select count(*)::int as n from drizzle.__drizzle_migrations');
  return Number(row?.n ?? 0);
}

/**
 * How long a request waits for PostgreSQL, so that a stalled server (or
 * network) is a 503 within seconds, not a request hanging: 3 s for a pool
 * connection (a free one, or a new one), then 3 s for each answer
 * (node-postgres's query_timeout, for a server that says nothing). The server
 * itself stops a statement after 2.5 s (statement_timeout, lock waits
 * included), so a slow but live server answers with an error first and its
 * connection stays usable. A session left idle inside a transaction for 5 s
 * (the service never pauses there longer than a Redis call, 3 s at most) is
 * ended by the server, so the locks of a client that vanished mid-transaction
 * are not held for long. Migrations use their own connection, without these.
 */
const CONNECT_TIMEOUT_MS = 3000;
const QUERY_TIMEOUT_MS = 3000;
const STATEMENT_TIMEOUT_MS = 2500;
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 5000;

/**
 * One checkout of a pooled connection, given back at the first sign that the
 * connection is lost. Drizzle's transaction sends BEGIN before its
 * try/finally: a BEGIN that failed on a stalled connection never released it,
 * and a few such activations left the pool with no connection for good. Here
 * the failed query releases it, with its error, so the pool closes it and
 * opens another; Drizzle's own release afterwards does nothing, and its
 * ROLLBACK fails at once (the connection is closed) instead of waiting too.
 */
function leaseOf(client: PoolClient): PoolClient {
  let released = false;
  const release = (error?: Error | boolean) => {
    if (released) return;
    released = true;
    client.release(error);
  };
  const lease = Object.create(client) as PoolClient;
  lease.release = release;
  lease.query = ((...args: unknown[]) => {
    const result = (client.query as (...a: unknown[]) => unknown).apply(client, args);
    if (!(result instanceof Promise)) return result;
    return result.catch((error: unknown) => {
      if (isConnectionLost(error)) release(error as Error);
      throw error;
    });
  }) as PoolClient['query'];
  return lease;
}

async function openPostgres(url: string, options: DatabaseOptions): Promise<Database> {
  // Loaded only for PostgreSQL: the embedded service starts without them.
  const [{ default: pg }, { drizzle: drizzlePg }, { migrate: migratePg }] = await Promise.all([
    import('pg'),
    import('drizzle-orm/node-postgres'),
    import('drizzle-orm/node-postgres/migrator'),
  ]);
  /** pool.query gives its connection back itself; a checkout (a transaction) gets a lease. */
  class LeasingPool extends pg.Pool {
    override connect(): Promise<PoolClient>;
    override connect(
      callback: (
        err: Error | undefined,
        client: PoolClient | undefined,
        done: (release?: unknown) => void,
      ) => void,
    ): void;
    override connect(
      callback?: (
        err: Error | undefined,
        client: PoolClient | undefined,
        done: (release?: unknown) => void,
      ) => void,
    ): Promise<PoolClient> | undefined {
      if (callback) {
        super.connect(callback);
        return undefined;
      }
      return super.connect().then(leaseOf);
    }
  }
  const pool = new LeasingPool({
    connectionString: url,
    max: options.poolSize,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: QUERY_TIMEOUT_MS,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
    // Idle connections are probed by TCP, so one whose peer is gone is noticed.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  // An idle client losing its connection must not crash the process; the pool
  // replaces it, and requests in the meantime get 503s.
  pool.on('error', (error) => options.logger.warn({ err: error }, 'PostgreSQL connection lost'));
  // The pool listens for errors only on idle clients. One lost while checked
  // out (the server ending a session idle in a transaction, say) would be an
  // unhandled 'error' event, which ends the process; its holder's next query
  // fails instead, and the lease gives it back.
  pool.on('connect', (client) => {
    client.on('error', (error) =>
      options.logger.debug({ err: error }, 'PostgreSQL connection lost while in use'),
    );
  });
  const db = drizzlePg({ client: pool, schema }) as unknown as Db;
  return {
    db,
    kind: 'postgres',
    query: async <Row>(name: string, text: string, params: unknown[]) =>
      (await pool.query({ name, text, values: params })).rows as Row[],
    migrate: async () => {
      // Its own connection, without the bounds of requests: a migration may
      // take long, and may wait for another instance's.
      const client = new pg.Client({
        connectionString: url,
        connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
        keepAlive: true,
      });
      await client.connect();
      try {
        // Session-level advisory lock: instances starting together apply the
        // migrations one after another; later ones find nothing left to do.
        await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
        try {
          const run = async (sql: string) => (await client.query(sql)).rows;
          const before = await countAppliedMigrations(run);
          await migratePg(drizzlePg({ client }), { migrationsFolder });
          return (await countAppliedMigrations(run)) - before;
        } finally {
          await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]);
        }
      } finally {
        await client.end();
      }
    },
    ping: async () => {
      await pool.query('select 1');
    },
    close: () => pool.end(),
  };
}
