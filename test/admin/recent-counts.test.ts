import { describe, expect, it } from 'vitest';
import { RecentCountsOfDay } from '../../src/admin/recent-counts.js';
import type { Database } from '../../src/db/client.js';
import { FakeClock } from '../helper.js';

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/**
 * A database of sign-up times that answers RecentCountsOfDay's two
 * statements as PostgreSQL would, the live count held back while `hold` is
 * set: two requests can then overlap in a chosen order.
 */
class SignUps {
  readonly times: number[] = [];
  hold: Promise<void> | null = null;

  readonly database = {
    query: async (name: string, _text: string, params: unknown[]) => {
      const [a, b, c] = params.map((p) => Date.parse(String(p))) as [number, number, number?];
      const within = (from: number, to: number) =>
        this.times.filter((t) => t >= from && t < to).length;
      if (name === 'admin_recent_live') {
        const held = this.hold;
        // The counts are taken when the statement runs, as PostgreSQL would.
        const users = within(a, b) + within(c ?? 0, Number.POSITIVE_INFINITY);
        if (held) await held;
        return [{ users, activations: 0, sign_ins: 0 }];
      }
      const perMinute = new Map<number, number>();
      for (const t of this.times.filter((t) => t >= a && t < b)) {
        const minute = Math.floor(t / MINUTE_MS);
        perMinute.set(minute, (perMinute.get(minute) ?? 0) + 1);
      }
      return [...perMinute].map(([minute, n]) => ({ figure: 'users', minute, n }));
    },
  } as unknown as Database;

  /**
   * What the last 24 hours hold at `nowMs`, counted one by one: with the
   * rows stamped after it (an instance whose clock is ahead), as the service counts them.
   */
  lastDayAt(nowMs: number): number {
    return this.times.filter((t) => t >= nowMs - DAY_MS).length;
  }
}

describe('RecentCountsOfDay', () => {
  it('a request overtaken by a later one, whose window dropped a minute, still counts that minute', async () => {
    const clock = new FakeClock();
    const signUps = new SignUps();
    const start = clock.now().getTime();
    // Every 20 s over the last 25 hours.
    for (let t = start - 25 * 3_600_000; t <= start; t += 20_000) signUps.times.push(t);
    const recent = new RecentCountsOfDay(signUps.database, clock);
    expect((await recent.lastDay()).users).toBe(signUps.lastDayAt(start));

    clock.advance(60);
    let release = () => {};
    signUps.hold = new Promise((resolve) => {
      release = resolve;
    });
    const overtaken = recent.lastDay();
    const overtakenAt = clock.now().getTime();
    signUps.hold = null;
    clock.advance(60);
    // The later request's window starts a minute on: its step drops that minute.
    const later = await recent.lastDay();
    release();
    expect(later.users).toBe(signUps.lastDayAt(clock.now().getTime()));
    expect((await overtaken).users).toBe(signUps.lastDayAt(overtakenAt));
  });

  it('stays exact when the clock goes back, jumps over a day, or a reading fails', async () => {
    const clock = new FakeClock();
    const signUps = new SignUps();
    const start = clock.now().getTime();
    for (let t = start - 50 * 3_600_000; t <= start + 30 * 3_600_000; t += 45_000) {
      signUps.times.push(t);
    }
    const recent = new RecentCountsOfDay(signUps.database, clock);
    const check = async () =>
      expect((await recent.lastDay()).users).toBe(signUps.lastDayAt(clock.now().getTime()));
    await check();
    clock.advance(-3_600);
    await check();
    clock.advance(26 * 3_600);
    await check();
    const query = signUps.database.query;
    signUps.database.query = () => Promise.reject(new Error('down'));
    clock.advance(600);
    await expect(recent.lastDay()).rejects.toThrow('down');
    signUps.database.query = query;
    await check();
    for (let i = 0; i < 5; i++) {
      clock.advance(37);
      await check();
    }
  });
});
