import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite, parse as pgliteParse, protocol } from '@electric-sql/pglite';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import type { Database, Db } from './client.js';
import { lockDataDir } from './data-dir-lock.js';
import { countAppliedMigrations, migrationsFolder } from './migrations.js';
import { PLAN_ONCE, REPLANNING, type Replanning } from './plan-once.js';
import * as schema from './schema.js';

/*
 * The embedded database: PGlite (PostgreSQL compiled to WebAssembly) in this
 * process. The commands that open it (`npm start`, `npm run migrate`, `npm run
 * cli`) run node with `--liftoff-only`, V8's baseline WebAssembly compiler
 * alone: its optimising tier recompiles the hot PostgreSQL functions in
 * background threads, and the memory those threads take stays with the
 * process. Under load the embedded service held 207-241 MB with it and
 * 162-197 MB without, and started 0.15-0.2 s sooner; uncached reads were about
 * 10% slower, sign-ins no slower (bench/README.md). A process-wide flag, so it
 * is set where the process starts, not here; `npm run start:postgres` (and the
 * image) leave it out: they compile no PGlite.
 */

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

/**
 * PostgreSQL's own page cache lives in PGlite's WebAssembly memory, inside our
 * process, and its default of 128 MB is touched at start: 16 MB halves the
 * embedded service's resident memory (about 320 -> 170 MB at start, measured
 * in bench/). Pages beyond it are still cached by the operating system. Named
 * statements are planned once, as on PostgreSQL (PLAN_ONCE).
 */
export const pgliteStartParams = [
  ...PGlite.defaultStartParams,
  '-c',
  'shared_buffers=16MB',
  '-c',
  `${PLAN_ONCE.name}=${PLAN_ONCE.value}`,
];

/** PGlite in memory (`memory://`), from the seed when there is one. */
export async function openPgliteInMemory(replanning?: Replanning): Promise<Database> {
  const seed = loadPgliteSeed();
  const client = await PGlite.create({
    startParams: pgliteStartParams,
    ...(seed ? { loadDataDir: seed } : {}),
  });
  return wrapPglite(client, true, replanning);
}

/**
 * PGlite under DATA_DIR, locked for this process until closed. The lock is
 * taken before anything in the directory is touched: a second process (the
 * service, migrate or the CLI) refuses here with a DataDirLockError and leaves
 * the data as the first one has it.
 */
export async function openPgliteDataDir(
  dataDir: string,
  replanning?: Replanning,
): Promise<Database> {
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
  const database = wrapPglite(client, true, replanning);
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
type PreparedStatement = {
  text: string;
  serializers: (Serializer | undefined)[];
  /** When it is to be prepared (and so planned) anew: REPLANNING. */
  replanAtMs: number;
};

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
 * Runs a named statement on PGlite, prepared once per engine (and anew after
 * REPLANNING), as on PostgreSQL. PGlite's `query` parses and plans every
 * statement and makes six calls into its WebAssembly for it; this binds and executes in one call:
 * 204-220 µs against 479-536 µs for a one-row lookup (bench/README.md). It
 * takes the same two locks as `query`, so it never runs inside another
 * caller's transaction, and reads the answer with PGlite's own parsers.
 * `_runExclusive…` are PGlite's internal API: the tests run every hot-path
 * statement through here, so an upgrade that changes them fails there.
 */
function queryPrepared<Row>(
  client: PGlite,
  statements: Map<string, PreparedStatement>,
  replanning: Replanning,
  name: string,
  text: string,
  params: unknown[],
): Promise<Row[]> {
  return client._runExclusiveTransaction(() =>
    client._runExclusiveQuery(async () => {
      let statement = statements.get(name);
      if (statement !== undefined && statement.text !== text) {
        throw new Error(`statement ${name} is already prepared with another text`);
      }
      const nowMs = replanning.clock.now().getTime();
      if (statement === undefined || nowMs >= statement.replanAtMs) {
        const { messages } = await client.execProtocol(
          Buffer.concat([
            ...(statement ? [protocol.serialize.close({ type: 'S', name })] : []),
            protocol.serialize.parse({ name, text }),
            protocol.serialize.describe({ type: 'S', name }),
            protocol.serialize.sync(),
          ]),
        );
        const types = pgliteParse.parseDescribeStatementResults(messages);
        statement = {
          text,
          serializers: types.map((type) => client.serializers[type]),
          replanAtMs: nowMs + replanning.afterMs,
        };
        statements.set(name, statement);
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
export function wrapPglite(
  client: PGlite,
  ownsClient = true,
  replanning: Replanning = REPLANNING,
): Database {
  const db = drizzlePglite({ client, schema }) as unknown as Db;
  const statements = preparedStatementsOf(client);
  return {
    db,
    kind: 'pglite',
    query: <Row>(name: string, text: string, params: unknown[]) =>
      queryPrepared<Row>(client, statements, replanning, name, text, params),
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
