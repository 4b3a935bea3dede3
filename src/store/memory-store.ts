import type { Clock } from '../lib/clock.js';
import type { Counter, KeyValueStore, Take } from './key-value-store.js';

type Entry = { value: string; expiresAtMs: number };

/**
 * In-process store for a single instance (the embedded default). Node runs one
 * operation at a time, so each method is atomic by construction. Expiry follows
 * the injected clock, so tests can advance time instead of sleeping.
 */
export class MemoryStore implements KeyValueStore {
  private readonly entries = new Map<string, Entry>();
  private readonly sweeper: NodeJS.Timeout;

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
    take?: Take,
  ): Promise<{ counts: number[]; values: (string | null)[]; taken: boolean }> {
    const nowMs = this.nowMs();
    const counts = counters.map((counter) => this.add(counter.key, counter.ttlSeconds, 1, nowMs));
    const values = keys.map((key) => this.live(key, nowMs)?.value ?? null);
    let taken = false;
    const takeKey = take && keys[take.read];
    if (take && takeKey !== undefined && (counts[0] ?? 0) <= take.whileCountAtMost) {
      taken = startsWithInConstantTime(values[take.read] ?? null, take.prefix);
      if (taken) {
        this.entries.delete(takeKey);
        if (counters[0]) this.entries.delete(counters[0].key);
      }
    }
    return { counts, values, taken };
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
