import type { Database, Db } from '../db/client.js';
import type { Random } from '../lib/random.js';
import { type KeyValueStore, StoreUnavailableError } from '../store/key-value-store.js';

// A version outlives any cache entry that could be tagged with it; when it
// expires, the next reader draws a new one and every entry misses once.
const VERSION_TTL_SECONDS = 86_400;
// Writes pending on a user: a write that never ended (the store went away in
// between) keeps the user uncached until this runs out.
const PENDING_TTL_SECONDS = 3_600;

/** Announces, before the commit, a user whose token check or profile the transaction changes. */
export type Announce = (userId: number) => Promise<void>;

/**
 * The one way to commit a change to what a user's token check or profile read
 * returns (revoking tokens, blocking, staff, activating a code): every
 * instance's caches (src/cache/) see it on their next request.
 *
 * Each user has, in the shared store, a version (a random tag) and a count of
 * writes in progress. A writer raises the count before it commits, and after
 * the commit sets a new version, then lowers the count. A cache reads both
 * (one round trip, `version`) *before* it reads the database, keeps what it
 * read under that version only when no write was in progress, and uses a
 * kept entry only while the version is unchanged and no write is in progress.
 * So:
 *
 * - a read that may have seen the state before a commit is never used after
 *   the writer answered, because the writer set a new version before answering;
 * - a writer that fails after its commit leaves the count raised: the user is
 *   read from the database until the count expires, which is slower, not wrong;
 * - versions are random, not counters, so a store that lost its keys (a Redis
 *   restart) cannot bring an old version back.
 *
 * Announcing does not depend on this instance's CACHE_SIZE: other instances,
 * and the CLI's changes, must be seen by whichever instance caches. A change
 * made by hand in SQL is seen when cached entries reach `CACHE_MAX_AGE_MS`
 * (src/cache/cache-aging.ts), or at once after deleting the user's version key.
 */
export class AccountChanges {
  /** Writes this instance has ended: a cache's confirmation older than one is void. */
  writesEnded = 0;

  constructor(
    private readonly database: Database,
    private readonly store: KeyValueStore,
    private readonly random: Random,
  ) {}

  private static keys(userId: number) {
    // One hash tag: both keys live on the same node of a Redis Cluster.
    return { pending: `uv:{${userId}}:p`, version: `uv:{${userId}}:v` };
  }

  /** Runs `work` in one transaction that changes these users, announced to every cache. */
  transaction<T>(userIds: readonly number[], work: (tx: Db) => Promise<T>): Promise<T> {
    return this.announcing(async (announce) => {
      for (const userId of userIds) await announce(userId);
      return this.database.db.transaction((tx) => work(tx as unknown as Db));
    });
  }

  /**
   * For a write that learns whom it changes as it goes (an activation finds
   * the code's owner inside its transaction, and may run it again): `work`
   * opens its transactions with `open` and calls `announce` for each user
   * before it commits. Every announced user gets a new version once `work`
   * ends, committed or not.
   */
  async announcing<T>(work: (announce: Announce) => Promise<T>): Promise<T> {
    const started = new Set<number>();
    const announce: Announce = async (userId) => {
      if (started.has(userId)) return;
      // Fails (503) before anything is committed when the store is unreachable.
      await this.store.increment(AccountChanges.keys(userId).pending, PENDING_TTL_SECONDS);
      started.add(userId);
    };
    try {
      return await work(announce);
    } finally {
      // The new version first, then the count: no reader sees an idle old version.
      // A failure here (the store went away after the commit) is not the
      // caller's: the count stays raised, so caches stand aside for this user.
      await Promise.allSettled(
        [...started].map(async (userId) => {
          const keys = AccountChanges.keys(userId);
          await this.store.set(keys.version, this.newVersion(), VERSION_TTL_SECONDS);
          await this.store.increment(keys.pending, PENDING_TTL_SECONDS, -1);
        }),
      );
      if (started.size > 0) this.writesEnded += 1;
    }
  }

  /** One transaction of an `announcing` write. */
  open<T>(work: (tx: Db) => Promise<T>): Promise<T> {
    return this.database.db.transaction((tx) => work(tx as unknown as Db));
  }

  /**
   * For caches: the version to tag a read with, or null when nothing read now
   * may be cached or trusted from the cache (a write in progress, or the
   * store is unreachable: then every read goes to the database).
   */
  async version(userId: number): Promise<string | null> {
    const keys = AccountChanges.keys(userId);
    try {
      const [pending, version] = await this.store.getMany([keys.pending, keys.version]);
      // A count below zero means it expired during a write: treat it as pending too.
      if (pending !== null && pending !== '0') return null;
      if (version != null) return version;
      const fresh = this.newVersion();
      // Two readers racing here: one sets it, the other does not cache this time.
      return (await this.store.setIfAbsent(keys.version, fresh, VERSION_TTL_SECONDS))
        ? fresh
        : null;
    } catch (error) {
      if (error instanceof StoreUnavailableError) return null;
      throw error;
    }
  }

  private newVersion(): string {
    return this.random.bytes(12).toString('base64url');
  }
}
