import type { Clock } from '../lib/clock.js';
import type { Random } from '../lib/random.js';
import { type KeyValueStore, StoreUnavailableError } from '../store/key-value-store.js';

// A version outlives any cache entry that could be tagged with it; when it
// expires, the next reader draws a new one and every entry misses once.
const VERSION_TTL_SECONDS = 86_400;
// Writes pending on a user: a write that never ended (the store went away in
// between) keeps the user uncached until this runs out.
const PENDING_TTL_SECONDS = 3_600;

/**
 * Makes per-instance caches of what a user's token or profile read returns
 * safe across instances: a revoked token or a new referral is seen on the very
 * next request, through any instance.
 *
 * Each user has, in the shared store, a version (a random tag) and a count of
 * writes in progress. A writer raises the count before it commits, and after
 * the commit sets a new version, then lowers the count. A reader reads both
 * (one round trip) *before* it reads the database and caches what it read
 * under that version, and only when no write was in progress; a cached entry is
 * used only while the version is unchanged and no write is in progress. So:
 *
 * - a read that may have seen the state before a commit is never used after
 *   the writer answered, because the writer set a new version before answering;
 * - a writer that fails after its commit leaves the count raised: the user is
 *   read from the database until the count expires, which is slower, not wrong;
 * - versions are random, not counters, so a store that lost its keys (a Redis
 *   restart) cannot bring an old version back.
 *
 * Every write that changes what a token check or a profile read returns
 * (revoking tokens, activating a code, blocking a user) must go through
 * `write`. A change made behind the service's back, by hand in SQL, is seen
 * when the entries reach `CACHE_MAX_AGE_MS`, or at once after deleting the
 * user's version key; `CACHE_SIZE=0` turns the caches off.
 */
export class UserVersions {
  constructor(
    private readonly store: KeyValueStore,
    private readonly random: Random,
  ) {}

  private static keys(userId: number) {
    // One hash tag: both keys live on the same node of a Redis Cluster.
    return { pending: `uv:{${userId}}:p`, version: `uv:{${userId}}:v` };
  }

  /**
   * The version to tag a read with, or null when nothing read now may be
   * cached or trusted from the cache (a write in progress, or the store is
   * unreachable: then every read goes to the database, as without a cache).
   */
  async current(userId: number): Promise<string | null> {
    const keys = UserVersions.keys(userId);
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

  /** Runs `change`, which commits a change to these users, announcing it to every cache. */
  async write<T>(userIds: readonly number[], change: () => Promise<T>): Promise<T> {
    const scope = this.begin();
    try {
      for (const userId of userIds) await scope.add(userId);
      return await change();
    } finally {
      await scope.end();
    }
  }

  /**
   * For a write that learns whom it changes as it goes (an activation finds
   * the code's owner inside its transaction): `add` each user before the
   * commit, `end` after it, committed or not.
   */
  begin(): WriteScope {
    const started = new Set<number>();
    return {
      add: async (userId) => {
        if (started.has(userId)) return;
        // Fails (503) before anything is committed when the store is unreachable.
        await this.store.increment(UserVersions.keys(userId).pending, PENDING_TTL_SECONDS);
        started.add(userId);
      },
      end: async () => {
        // The new version first, then the count: no reader sees an idle old version.
        // A failure here (the store went away after the commit) is not the
        // caller's: the count stays raised, so caches stand aside for this user.
        await Promise.allSettled(
          [...started].map(async (userId) => {
            const keys = UserVersions.keys(userId);
            await this.store.set(keys.version, this.newVersion(), VERSION_TTL_SECONDS);
            await this.store.increment(keys.pending, PENDING_TTL_SECONDS, -1);
          }),
        );
      },
    };
  }

  private newVersion(): string {
    return this.random.bytes(12).toString('base64url');
  }
}

export type WriteScope = {
  add(userId: number): Promise<void>;
  end(): Promise<void>;
};

/**
 * The longest a cached entry is used, however often it is confirmed: a bound
 * on how long a change made by hand in SQL can go unseen.
 */
export const CACHE_MAX_AGE_MS = 60_000;

/** Options for an LRUCache whose entries age by the service's clock. */
export function cacheAging(clock: Clock) {
  // ttlResolution 0: read the clock on every check (a fake one jumps in tests).
  return { ttl: CACHE_MAX_AGE_MS, ttlResolution: 0, perf: { now: () => clock.now().getTime() } };
}
