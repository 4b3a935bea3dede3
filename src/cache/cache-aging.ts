import type { Clock } from '../lib/clock.js';

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
