/**
 * The shared, expiring key-value state of the service (one-time codes, counters,
 * cooldowns). Every operation is atomic on its own, so that logic built on it
 * never does a read-then-write: there is no window for two instances to
 * interleave. TTLs are whole seconds and are set when a key is created.
 */
export interface KeyValueStore {
  get(key: string): Promise<string | null>;
  /**
   * Reads several keys at one instant (null for each missing one). On a Redis
   * Cluster the keys must share a hash tag, e.g. `v:{user:1}:a` and `v:{user:1}:b`.
   */
  getMany(keys: readonly string[]): Promise<(string | null)[]>;
  /** Sets the value and its TTL, replacing any previous value. */
  set(key: string, value: string, ttlSeconds: number): Promise<void>;
  /**
   * Sets the value (as `set`) and removes `deleteKeys`, all at one instant, e.g.
   * a new one-time code and the count of guesses at the old one. On a Redis
   * Cluster the keys must share a hash tag.
   */
  setAndDelete(
    key: string,
    value: string,
    ttlSeconds: number,
    deleteKeys: readonly string[],
  ): Promise<void>;
  /** Sets the value only if the key does not exist; true when it was set. */
  setIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean>;
  /** Returns the value and removes the key in one step (null when absent). */
  getAndDelete(key: string): Promise<string | null>;
  /** Removes the key only if it still holds `value`; true when removed. */
  deleteIfEquals(key: string, value: string): Promise<boolean>;
  /** Adds `by` (default 1) and returns the new value; a new key starts at 0 and gets the TTL. */
  increment(key: string, ttlSeconds: number, by?: number): Promise<number>;
  /**
   * Adds 1 to each counter (as `increment`) and reads `keys`, all at one
   * instant and in one round trip: the counts are in the order of `counters`,
   * the values in the order of `keys`. With `take`, the same step then removes
   * the key read at `keys[take.read]` if its value starts with `take.prefix`
   * (compared in constant time) and the first counter is at most
   * `take.whileCountAtMost`, and with it that first counter, which counted
   * the attempts at what is now gone; `taken` says whether it did. So a
   * caller that knows only part of a value can consume it without a second
   * step. On a Redis Cluster all keys must share a hash tag.
   */
  incrementAndGet(
    counters: readonly Counter[],
    keys: readonly string[],
    take?: Take,
  ): Promise<{ counts: number[]; values: (string | null)[]; taken: boolean }>;
  delete(key: string): Promise<void>;
  /** Seconds the key has left; null when it does not exist or never expires. */
  ttlSeconds(key: string): Promise<number | null>;
  /** Throws StoreUnavailableError when the store cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** A counter for `incrementAndGet`: its key, and the TTL it gets when created. */
export type Counter = { key: string; ttlSeconds: number };

/** What `incrementAndGet` may remove in the same step: one of the keys it reads, by index. */
export type Take = { read: number; prefix: string; whileCountAtMost: number };

export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}
