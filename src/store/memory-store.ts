import { timingSafeEqual } from 'node:crypto';
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

  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAtMs <= this.clock.now().getTime()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  private sweep(): void {
    const nowMs = this.clock.now().getTime();
    for (const [key, entry] of this.entries)
      if (entry.expiresAtMs <= nowMs) this.entries.delete(key);
  }

  private expiry(ttlSeconds: number): number {
    return this.clock.now().getTime() + ttlSeconds * 1000;
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
    const counts = counters.map((counter) => this.add(counter.key, counter.ttlSeconds, 1));
    const values = keys.map((key) => this.live(key)?.value ?? null);
    let taken = false;
    const takeKey = take && keys[take.read];
    if (take && takeKey !== undefined && (counts[0] ?? 0) <= take.whileCountAtMost) {
      taken = startsWithInConstantTime(values[take.read] ?? null, take.prefix);
      if (taken) this.entries.delete(takeKey);
    }
    return { counts, values, taken };
  }

  async increment(key: string, ttlSeconds: number, by = 1): Promise<number> {
    return this.add(key, ttlSeconds, by);
  }

  private add(key: string, ttlSeconds: number, by: number): number {
    const entry = this.live(key);
    if (entry === undefined) {
      this.entries.set(key, { value: String(by), expiresAtMs: this.expiry(ttlSeconds) });
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
    const entry = this.live(key);
    if (entry === undefined) return null;
    return Math.ceil((entry.expiresAtMs - this.clock.now().getTime()) / 1000);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.entries.clear();
  }
}

/** Whether `value` starts with `prefix`, comparing every byte whatever the first difference. */
function startsWithInConstantTime(value: string | null, prefix: string): boolean {
  if (value === null) return false;
  const head = Buffer.from(value).subarray(0, Buffer.byteLength(prefix));
  const expected = Buffer.from(prefix);
  return head.length === expected.length && timingSafeEqual(head, expected);
}
