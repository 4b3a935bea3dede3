import type { PoolClient } from 'pg';
import type { Logger } from 'pino';
import { isConnectionLost } from '../lib/pg-errors.js';
import type { Database, Db } from './client.js';
import { countAppliedMigrations, migrationsFolder } from './migrations.js';
import { PLAN_ONCE, REPLANNING, type Replanning } from './plan-once.js';
import * as schema from './schema.js';

// Any fixed 64-bit number works; every instance must use the same one.
const MIGRATION_LOCK_KEY = 7_366_290_512_001n;

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

export async function openPostgres(
  url: string,
  options: { poolSize: number; logger: Logger; replanning?: Replanning | undefined },
): Promise<Database> {
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
    options: `-c ${PLAN_ONCE.name}=${PLAN_ONCE.value}`,
    // A connection ends when given back after this long, and its statements are planned anew.
    maxLifetimeSeconds: Math.max(1, Math.round((options.replanning ?? REPLANNING).afterMs / 1000)),
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
