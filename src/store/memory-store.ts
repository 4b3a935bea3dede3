import type { Clock } from '../lib/clock.js';
import type {
  Counter,
  Guess,
  GuessOutcome,
  KeyValueStore,
  LogAdded,
  LogLimit,
} from './key-value-store.js';

type LogEvent = { atMs: number; id: string };

/** A value, or a sliding log (`addToLog`), whose events are kept oldest first. */
type Entry = { value: string; expiresAtMs: number; events?: LogEvent[] };

/**
 * In-process store for a single instance (the embedded default). Node runs one
 * operation at a time, so each method is atomic by construction. Expiry follows
 * the injected clock, so tests can advance time instead of sleeping.
 */
export class MemoryStore implements KeyValueStore {
  readonly inProcess = true;
  private readonly entries = new Map<string, Entry>();
  private readonly sweeper: NodeJS.Timeout;
  private nextEventId = 0;

  constructor(private readonly clock: Clock) {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  private nowMs(): number {
    return this.clock.now().getTime();
  }

  private expiry(ttlSeconds: number, nowMs = this.nowMs()): number {
    return nowMs + ttlSeconds * 1000;
  }

  /** The entry if it has not expired; `nowMs` read once per operation. */
  private live(key: string, nowMs = this.nowMs()): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAtMs <= nowMs) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  private sweep(): void {
    const nowMs = this.nowMs();
    for (const [key, entry] of this.entries)
      if (entry.expiresAtMs <= nowMs) this.entries.delete(key);
  }

  async get(key: string): Promise<string | null> {
    return this.live(key)?.value ?? null;
  }

  async getMany(keys: readonly string[]): Promise<(string | null)[]> {
    return keys.map((key) => this.live(key)?.value ?? null);
  }

  async set(key: string, value: string, ttlSeconds: number): Promise<void> {
    this.entries.set(key, { value, expiresAtMs: this.expiry(ttlSeconds) });
  }

  async setAndDelete(
    key: string,
    value: string,
    ttlSeconds: number,
    deleteKeys: readonly string[],
  ): Promise<void> {
    this.entries.set(key, { value, expiresAtMs: this.expiry(ttlSeconds) });
    for (const other of deleteKeys) this.entries.delete(other);
  }

  async setIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean> {
    if (this.live(key) !== undefined) return false;
    this.entries.set(key, { value, expiresAtMs: this.expiry(ttlSeconds) });
    return true;
  }

  async getAndDelete(key: string): Promise<string | null> {
    const entry = this.live(key);
    if (entry === undefined) return null;
    this.entries.delete(key);
    return entry.value;
  }

  async deleteIfEquals(key: string, value: string): Promise<boolean> {
    if (this.live(key)?.value !== value) return false;
    this.entries.delete(key);
    return true;
  }

  async incrementAndGet(
    counters: readonly Counter[],
    keys: readonly string[],
  ): Promise<{ counts: number[]; values: (string | null)[] }> {
    const nowMs = this.nowMs();
    const counts = counters.map((counter) => this.add(counter.key, counter.ttlSeconds, 1, nowMs));
    const values = keys.map((key) => this.live(key, nowMs)?.value ?? null);
    return { counts, values };
  }

  async addToLog(log: LogLimit, nowMs: number): Promise<LogAdded> {
    const events = this.eventsOf(log, nowMs);
    const retryAfterMs = this.logWait(log, events, nowMs);
    if (retryAfterMs !== null) return { ok: false, retryAfterMs };
    const id = this.logEvent(log, events, nowMs);
    return { ok: true, id, held: events.length, oldestAtMs: (events[0] as LogEvent).atMs };
  }

  async removeFromLog(key: string, id: string): Promise<void> {
    const entry = this.live(key);
    if (entry?.events) entry.events = entry.events.filter((event) => event.id !== id);
  }

  async guess(guess: Guess, nowMs: number): Promise<GuessOutcome> {
    const storeNowMs = this.nowMs();
    const events = guess.failures ? this.eventsOf(guess.failures, nowMs) : [];
    if (guess.failures) {
      const retryAfterMs = this.logWait(guess.failures, events, nowMs);
      if (retryAfterMs !== null) return { outcome: 'capped', retryAfterMs };
    }
    const entry = this.live(guess.key, storeNowMs);
    if (entry === undefined) return { outcome: 'absent' };
    const record = entry.value;
    const attempts = this.live(guess.attemptsKey, storeNowMs);
    const attempt = Number(attempts?.value ?? 0) + 1;
    if (attempt > guess.maxAttempts) return { outcome: 'exhausted', record };
    if (startsWithInConstantTime(record, guess.prefix)) {
      this.entries.delete(guess.key);
      this.entries.delete(guess.attemptsKey);
      return { outcome: 'taken', record };
    }
    // The attempts expire with the record they count.
    this.entries.set(guess.attemptsKey, { value: String(attempt), expiresAtMs: entry.expiresAtMs });
    if (!guess.failures) return { outcome: 'wrong', record, attempt };
    const failureId = this.logEvent(guess.failures, events, nowMs);
    const failures = { held: events.length, oldestAtMs: (events[0] as LogEvent).atMs };
    return { outcome: 'wrong', record, attempt, failureId, failures };
  }

  async giveBackGuess(guess: Guess, record: string, failureId: string | undefined): Promise<void> {
    if (guess.failures && failureId !== undefined)
      await this.removeFromLog(guess.failures.key, failureId);
    if (this.live(guess.key)?.value !== record) return;
    const attempts = this.live(guess.attemptsKey);
    if (attempts && Number(attempts.value) > 0) attempts.value = String(Number(attempts.value) - 1);
  }

  /** The events of a log still inside its window at `nowMs`, oldest first; older ones are dropped. */
  private eventsOf(log: LogLimit, nowMs: number): LogEvent[] {
    const entry = this.live(log.key);
    if (entry?.events === undefined) return [];
    const windowStartMs = nowMs - log.windowSeconds * 1000;
    entry.events = entry.events.filter((event) => event.atMs > windowStartMs);
    return entry.events;
  }

  /** Milliseconds until one more event fits the log, or null when it fits now. */
  private logWait(log: LogLimit, events: LogEvent[], nowMs: number): number | null {
    if (events.length < log.limit) return null;
    const freeing = events[events.length - log.limit] as LogEvent;
    return freeing.atMs + log.windowSeconds * 1000 - nowMs;
  }

  private logEvent(log: LogLimit, events: LogEvent[], nowMs: number): string {
    const id = String(this.nextEventId++);
    // Kept in time order: instances of one deployment may pass clocks a little apart.
    let at = events.length;
    while (at > 0 && (events[at - 1] as LogEvent).atMs > nowMs) at--;
    events.splice(at, 0, { atMs: nowMs, id });
    this.entries.set(log.key, { value: '', events, expiresAtMs: this.expiry(log.windowSeconds) });
    return id;
  }

  /** Keys held now, expired ones not counted (for tests: what state a request left behind). */
  keyCount(): number {
    this.sweep();
    return this.entries.size;
  }

  async increment(key: string, ttlSeconds: number, by = 1): Promise<number> {
    return this.add(key, ttlSeconds, by);
  }

  private add(key: string, ttlSeconds: number, by: number, nowMs = this.nowMs()): number {
    const entry = this.live(key, nowMs);
    if (entry === undefined) {
      this.entries.set(key, { value: String(by), expiresAtMs: this.expiry(ttlSeconds, nowMs) });
      return by;
    }
    const next = Number(entry.value) + by;
    entry.value = String(next);
    return next;
  }

  async delete(key: string): Promise<void> {
    this.entries.delete(key);
  }

  async ttlSeconds(key: string): Promise<number | null> {
    const nowMs = this.nowMs();
    const entry = this.live(key, nowMs);
    if (entry === undefined) return null;
    return Math.ceil((entry.expiresAtMs - nowMs) / 1000);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.entries.clear();
  }
}

/**
 * Whether `value` starts with `prefix`, looking at every character of the
 * prefix whatever the first difference (no early exit), as timingSafeEqual
 * does, without copying both into buffers on every guess.
 */
function startsWithInConstantTime(value: string | null, prefix: string): boolean {
  if (value === null || value.length < prefix.length) return false;
  let difference = 0;
  for (let i = 0; i < prefix.length; i++) difference |= value.charCodeAt(i) ^ prefix.charCodeAt(i);
  return difference === 0;
}
