import type { Clock } from '../lib/clock.js';
import type { KeyValueStore, LogLimit } from '../store/key-value-store.js';
import type { Budget, LimitState, Taken } from './send-limiter.js';

/**
 * An exact sliding-window cap: "at most `limit` events in any `windowSeconds`",
 * kept as a log of each counted event's time in the store (one atomic step per
 * event: a sorted set in a Lua script on Redis). Unlike the two-window estimate
 * of SlidingWindow it admits no burst across a window boundary, at the price
 * of holding up to `limit` entries per subject: it is for the small caps that
 * protect a secret or a victim (wrong guesses and codes per number). Times come
 * from the injected clock, so tests move time instead of sleeping.
 */
export class SlidingLog implements Budget {
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

  /** The subject is the key's hash tag, so a caller may use the log in a step with its own keys on a Redis Cluster. */
  of(subject: string): LogLimit {
    return {
      key: `log:${this.name}:{${subject}}`,
      limit: this.limit,
      windowSeconds: this.windowSeconds,
    };
  }

  /** The state of a log that holds `held` events, the oldest at `oldestAtMs`. */
  usage(held: number, oldestAtMs: number, nowMs: number): Omit<LimitState, 'name'> {
    return {
      quota: this.limit,
      windowSeconds: this.windowSeconds,
      remaining: Math.max(0, this.limit - held),
      resetSeconds: secondsOf(oldestAtMs + this.windowSeconds * 1000 - nowMs),
    };
  }

  /** Counts one event if it fits, with a way to give it back; otherwise counts nothing and says when to retry. */
  async take(subject: string): Promise<Taken> {
    if (!this.enabled) return { ok: true, giveBack: async () => {} };
    const log = this.of(subject);
    const nowMs = this.clock.now().getTime();
    const added = await this.store.addToLog(log, nowMs);
    const usage = { quota: this.limit, windowSeconds: this.windowSeconds };
    if (!added.ok) {
      const retryAfterSeconds = secondsOf(added.retryAfterMs);
      return {
        ok: false,
        retryAfterSeconds,
        usage: { ...usage, remaining: 0, resetSeconds: retryAfterSeconds },
      };
    }
    return {
      ok: true,
      giveBack: () => this.store.removeFromLog(log.key, added.id),
      // The oldest event is the next to slide out, and (when the log is full) the one that frees a place.
      usage: this.usage(added.held, added.oldestAtMs, nowMs),
    };
  }
}

/** Whole seconds to wait, rounded up, at least 1. */
export function secondsOf(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
