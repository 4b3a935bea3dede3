import type { Clock } from '../lib/clock.js';
import type { Counter, KeyValueStore } from '../store/key-value-store.js';
import type { Budget, LimitVerdict, Taken } from './send-limiter.js';

/** A `take`'s store operations and its verdict. */
type PreparedTake = {
  counter: Counter;
  previousKey: string;
  judge(current: number, previousText: string | null): LimitVerdict;
};

/**
 * A sliding-window counter: "at most `limit` events in any `windowSeconds`",
 * estimated from two fixed windows (the previous one weighted by how much of
 * it still overlaps the sliding window). Unlike a plain fixed window it allows
 * no double burst around a window boundary, and it needs only the store's
 * atomic increment: two small keys per subject, whatever the limit.
 *
 * It is an estimate: it assumes the previous window's events were spread
 * evenly, so events bunched at the end of one window and the start of the
 * next can reach about twice the limit within one sliding window. Caps that
 * protect a secret or a victim use the exact SlidingLog instead; this one is
 * for the per-client and global budgets, where a client can be anyone and the
 * limit can be large. Window keys follow the injected clock, so tests move
 * time instead of sleeping, on the memory store and on Redis alike.
 */
export class SlidingWindow implements Budget {
  constructor(
    private readonly store: KeyValueStore,
    private readonly clock: Clock,
    private readonly name: string,
    private readonly limit: number,
    private readonly windowSeconds: number,
  ) {}

  get enabled(): boolean {
    return this.limit > 0;
  }

  private position(nowMs: number) {
    const windowMs = this.windowSeconds * 1000;
    const index = Math.floor(nowMs / windowMs);
    return { index, windowMs, elapsed: (nowMs - index * windowMs) / windowMs };
  }

  /** The subject is the key's hash tag, so a caller may batch it with its own keys on a Redis Cluster. */
  private keys(subject: string, index: number) {
    return {
      current: `rl:${this.name}:{${subject}}:${index}`,
      previous: `rl:${this.name}:{${subject}}:${index - 1}`,
    };
  }

  private estimate(previous: number, current: number, elapsed: number): number {
    return previous * (1 - elapsed) + current;
  }

  /**
   * Seconds until one more event fits: within this window once enough of the
   * previous one has slid out, else in the next window.
   */
  private retryAfter(previous: number, current: number, elapsed: number, windowMs: number): number {
    const windowSeconds = windowMs / 1000;
    if (current + 1 <= this.limit) {
      // previous * (1 - f) + current + 1 <= limit  <=>  f >= 1 - (limit - current - 1) / previous
      const f = 1 - (this.limit - current - 1) / previous;
      return Math.max(1, Math.ceil((f - elapsed) * windowSeconds));
    }
    const untilNext = (1 - elapsed) * windowSeconds;
    const f = current > 0 ? Math.max(0, 1 - (this.limit - 1) / current) : 0;
    return Math.max(1, Math.ceil(untilNext + f * windowSeconds));
  }

  /** What `take` does in the store: increment `counter`, read `previousKey` at the same instant, then `judge` the two. */
  private prepareTake(subject: string): PreparedTake {
    const { index, windowMs, elapsed } = this.position(this.clock.now().getTime());
    const keys = this.keys(subject, index);
    return {
      counter: { key: keys.current, ttlSeconds: this.windowSeconds * 2 },
      previousKey: keys.previous,
      judge: (current, previousText) => {
        const previous = Number(previousText ?? 0);
        if (this.estimate(previous, current, elapsed) <= this.limit) return { ok: true };
        return {
          ok: false,
          retryAfterSeconds: this.retryAfter(previous, current - 1, elapsed, windowMs),
        };
      },
    };
  }

  /** Gives back the event counted by a prepared take (refused, or not to be counted after all). */
  private async refund(take: PreparedTake): Promise<void> {
    await this.store.increment(take.counter.key, take.counter.ttlSeconds, -1);
  }

  /**
   * Counts one event if it fits, with a way to give it back (when a later
   * check refuses the request); otherwise counts nothing and says when to retry.
   */
  async take(subject: string): Promise<Taken> {
    if (!this.enabled) return { ok: true, giveBack: async () => {} };
    const prepared = this.prepareTake(subject);
    // Increment first, then judge: concurrent requests each see a distinct count,
    // so no burst can slip past the limit between a read and a write.
    const {
      counts: [current = 0],
      values: [previous = null],
    } = await this.store.incrementAndGet([prepared.counter], [prepared.previousKey]);
    const verdict = prepared.judge(current, previous);
    if (!verdict.ok) {
      await this.refund(prepared);
      return verdict;
    }
    // The very key counted, even if the window has moved on since.
    return { ok: true, giveBack: () => this.refund(prepared) };
  }
}
