/**
 * The shared, expiring key-value state of the service (one-time codes, counters,
 * cooldowns). Every operation is atomic on its own, so that logic built on it
 * never does a read-then-write: there is no window for two instances to
 * interleave. TTLs are whole seconds and are set when a key is created.
 */
export interface KeyValueStore {
  /**
   * True when operations complete in this process, without I/O (the memory
   * store): answers that used only the store are ready in the same turn of
   * the event loop as their request.
   */
  readonly inProcess: boolean;
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
   * the values in the order of `keys`. On a Redis Cluster all keys must share
   * a hash tag.
   */
  incrementAndGet(
    counters: readonly Counter[],
    keys: readonly string[],
  ): Promise<{ counts: number[]; values: (string | null)[] }>;
  /**
   * Adds an event at `nowMs` to the log at `log.key` if fewer than `log.limit`
   * of its events fall in the window that ends now, (nowMs - windowSeconds,
   * nowMs]; events older than that are dropped. Otherwise adds nothing and
   * says how long until enough of them have slid out for one more. An exact
   * "at most `limit` in any window": the log keeps each event's time (so it
   * holds up to `limit` entries). `id` names the event for `removeFromLog`.
   */
  addToLog(log: LogLimit, nowMs: number): Promise<LogAdded>;
  /** Removes one event from a log (a reservation given back); nothing if it is gone. */
  removeFromLog(key: string, id: string): Promise<void>;
  /**
   * One guess at a secret record, judged and counted in one atomic step and
   * one round trip (see `Guess`). In order: if the failures log is full, the
   * answer is `capped` and nothing is read or counted; a missing record is
   * `absent` and creates nothing; a record whose attempts are used up is
   * `exhausted`; a guess the record starts with (compared in constant time)
   * takes the record and its attempts (`taken`); any other guess is `wrong`,
   * counted at the record (its attempts expire with it) and in the failures
   * log. On a Redis Cluster the keys must share a hash tag.
   */
  guess(guess: Guess, nowMs: number): Promise<GuessOutcome>;
  /**
   * Undoes the counting of a `wrong` guess (refused after all by another
   * budget): removes its failure from the log and, if the record is still
   * `record` (not replaced or taken since), one of its attempts.
   */
  giveBackGuess(guess: Guess, record: string, failureId: string | undefined): Promise<void>;
  delete(key: string): Promise<void>;
  /** Seconds the key has left; null when it does not exist or never expires. */
  ttlSeconds(key: string): Promise<number | null>;
  /** Throws StoreUnavailableError when the store cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** A counter for `incrementAndGet`: its key, and the TTL it gets when created. */
export type Counter = { key: string; ttlSeconds: number };

/** A sliding log for `addToLog`: its key, and at most `limit` events in any `windowSeconds`. */
export type LogLimit = { key: string; limit: number; windowSeconds: number };

/** `held`: events in the window once this one is added; `oldestAtMs`: the time of the oldest of them. */
export type LogAdded =
  | { ok: true; id: string; held: number; oldestAtMs: number }
  | { ok: false; retryAfterMs: number };

/** What `guess` guesses at, and the budgets it counts in. */
export type Guess = {
  /** The record guessed at. */
  key: string;
  /** A right guess: what the record starts with. */
  prefix: string;
  /** Guesses at this record; it goes with the record. */
  attemptsKey: string;
  maxAttempts: number;
  /** Wrong guesses across records (e.g. per number and hour); none when absent. */
  failures?: LogLimit;
};

export type GuessOutcome =
  | { outcome: 'capped'; retryAfterMs: number }
  | { outcome: 'absent' }
  | { outcome: 'exhausted'; record: string }
  | { outcome: 'taken'; record: string }
  | {
      outcome: 'wrong';
      record: string;
      attempt: number;
      failureId?: string;
      /** The failures log after this guess: events held and the oldest one's time (ms). */
      failures?: { held: number; oldestAtMs: number };
    };

export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}
