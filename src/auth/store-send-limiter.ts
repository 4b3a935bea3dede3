import { isIPv6 } from 'node:net';
import type { RegionBudgets } from '../config.js';
import type { Clock } from '../lib/clock.js';
import type { KeyValueStore } from '../store/key-value-store.js';
import {
  type Budget,
  givenBack,
  type LimitState,
  type LimitVerdict,
  type Reservation,
  type SendLimit,
  type SendLimiter,
  type Taken,
} from './send-limiter.js';
import { SlidingLog } from './sliding-log.js';
import { SlidingWindow } from './sliding-window.js';

export type SendLimits = {
  resendCooldownSeconds: number;
  maxPerPhonePerHour: number;
  maxPerIpPerHour: number;
  smsMaxPerHour: number;
  /** Messages sent per hour to the numbers of each region (SMS_MAX_PER_REGION_PER_HOUR). */
  smsPerRegionPerHour?: RegionBudgets;
  /** Verifications per client (IP, or IPv6 /64) per hour (0: no cap). */
  maxVerifyPerIpPerHour: number;
};

const HOUR_SECONDS = 3600;

/** The subject of numbers of no region (+800, +882…): libphonenumber's code for non-geographic entities. */
const NON_GEOGRAPHIC = '001';

/**
 * Told each time a region's budget refuses a message: where logs, metrics and audit hook in.
 * Awaited before the refusal is answered; it must not throw.
 */
export type RegionBudgetHit = (region: string, limit: number) => void | Promise<void>;

/**
 * Clients on IPv6 usually own a whole /64, so one client is one /64: otherwise
 * an attacker would rotate through addresses and never hit the per-IP cap.
 */
export function clientKey(ip: string): string {
  if (!isIPv6(ip)) return ip;
  if (ip.startsWith('::ffff:')) return ip.slice(7);
  const [head = '', tail = ''] = ip.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups = ip.includes('::')
    ? [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups]
    : ip.split(':');
  return `${groups
    .slice(0, 4)
    .map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/**
 * Send limits kept in the shared store, so every instance enforces
 * one limit together. A request must fit every budget; if a later one refuses,
 * what the earlier ones counted is given back, so a refused request costs the
 * caller nothing (an honest user is not locked out by an attacker's refusals
 * on the global budget).
 *
 * The cap of codes per number protects a victim from SMS bombing, so it is
 * exact (a log of send times). The per-client and global budgets use the
 * cheaper two-window estimate: a client's state stays two small keys however
 * many clients there are and however high the limit, and what any one number
 * receives or is guessed at is bounded exactly by the per-number caps anyway.
 */
export class StoreSendLimiter implements SendLimiter {
  private readonly perPhone: SlidingLog;
  private readonly perIp: SlidingWindow;
  private readonly global: SlidingWindow;
  private readonly verifyPerIp: SlidingWindow;
  /** A budget per listed region, and one shape for each region not listed (none: no budget). */
  private readonly perRegion = new Map<string, SlidingWindow>();
  private readonly perOtherRegion: SlidingWindow | undefined;

  constructor(
    private readonly store: KeyValueStore,
    private readonly clock: Clock,
    private readonly limits: SendLimits,
    private readonly onRegionBudgetHit: RegionBudgetHit = () => {},
  ) {
    this.perPhone = new SlidingLog(store, clock, 'phone', limits.maxPerPhonePerHour, HOUR_SECONDS);
    this.perIp = new SlidingWindow(store, clock, 'ip', limits.maxPerIpPerHour, HOUR_SECONDS);
    this.global = new SlidingWindow(store, clock, 'sms', limits.smsMaxPerHour, HOUR_SECONDS);
    this.verifyPerIp = new SlidingWindow(
      store,
      clock,
      'verify-ip',
      limits.maxVerifyPerIpPerHour,
      HOUR_SECONDS,
    );
    const regionWindow = (limit: number) =>
      new SlidingWindow(store, clock, 'sms-region', limit, HOUR_SECONDS);
    const { regions = {}, others = 0 } = limits.smsPerRegionPerHour ?? {};
    for (const [region, limit] of Object.entries(regions))
      this.perRegion.set(region, regionWindow(limit));
    this.perOtherRegion = others > 0 ? regionWindow(others) : undefined;
  }

  /**
   * Each region has its own budget (a `*` entry gives every region not listed
   * one of that size), so that pumping one country's premium numbers stops
   * that country only; the global budget still bounds them all together.
   */
  private regionBudget(region: string): Budget | undefined {
    return this.perRegion.get(region) ?? this.perOtherRegion;
  }

  private regionLimit(region: string): number {
    return (
      this.limits.smsPerRegionPerHour?.regions[region] ??
      this.limits.smsPerRegionPerHour?.others ??
      0
    );
  }

  private cooldownKey(phoneNumber: string): string {
    return `cooldown:${phoneNumber}`;
  }

  /**
   * The cooldown key holds its own end time, judged by the injected clock; the
   * store's TTL only cleans it up. An expired key is replaced by compare-and-
   * delete then set-if-absent, so of two racing requests only one gets through.
   */
  private async takeCooldown(
    phoneNumber: string,
  ): Promise<{ verdict: LimitVerdict; marker?: string }> {
    const seconds = this.limits.resendCooldownSeconds;
    if (seconds <= 0) return { verdict: { ok: true } };
    const key = this.cooldownKey(phoneNumber);
    const nowMs = this.clock.now().getTime();
    const marker = String(nowMs + seconds * 1000);
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await this.store.setIfAbsent(key, marker, seconds))
        return { verdict: { ok: true }, marker };
      const existing = await this.store.get(key);
      if (existing === null) continue;
      const remainingMs = Number(existing) - nowMs;
      if (remainingMs > 0) {
        return { verdict: { ok: false, retryAfterSeconds: Math.ceil(remainingMs / 1000) } };
      }
      await this.store.deleteIfEquals(key, existing);
    }
    return { verdict: { ok: false, retryAfterSeconds: 1 } };
  }

  async reserve(
    phoneNumber: string,
    clientIp: string,
    region: string | undefined,
  ): Promise<Reservation> {
    const cooldown = await this.takeCooldown(phoneNumber);
    const cooldownState = (resetSeconds: number): LimitState => ({
      name: 'cooldown',
      quota: 1,
      windowSeconds: this.limits.resendCooldownSeconds,
      remaining: 0,
      resetSeconds,
    });
    if (!cooldown.verdict.ok) {
      const { retryAfterSeconds } = cooldown.verdict;
      return {
        ok: false,
        limit: 'cooldown',
        retryAfterSeconds,
        limits: [cooldownState(retryAfterSeconds)],
      };
    }
    const ofNumber: (() => Promise<unknown>)[] = [];
    // What was checked, and whether `release` gives it back.
    const checked: [LimitState, boolean][] = [];
    if (cooldown.marker) {
      const marker = cooldown.marker;
      ofNumber.push(() => this.store.deleteIfEquals(this.cooldownKey(phoneNumber), marker));
      checked.push([cooldownState(this.limits.resendCooldownSeconds), true]);
    }
    const undo = [...ofNumber];
    const regionSubject = region ?? NON_GEOGRAPHIC;
    const ofRegion = this.regionBudget(regionSubject);
    const steps: [Budget, string, SendLimit][] = [
      [this.perPhone, phoneNumber, 'phone'],
      [this.perIp, clientKey(clientIp), 'ip'],
      ...(ofRegion ? [[ofRegion, regionSubject, 'region'] as [Budget, string, SendLimit]] : []),
      [this.global, 'all', 'global'],
    ];
    for (const [budget, subject, limit] of steps) {
      const taken = await budget.take(subject);
      if (!taken.ok) {
        await Promise.all(undo.map((u) => u()));
        if (limit === 'region')
          await this.onRegionBudgetHit(regionSubject, this.regionLimit(regionSubject));
        // The refusing limit is the one closest to being hit: the others had room.
        const refused = { ...taken.usage, name: limit };
        return { ok: false, limit, retryAfterSeconds: taken.retryAfterSeconds, limits: [refused] };
      }
      undo.push(taken.giveBack);
      if (limit === 'phone') ofNumber.push(taken.giveBack);
      if (taken.usage) checked.push([{ ...taken.usage, name: limit }, limit === 'phone']);
    }
    return {
      ok: true,
      limits: checked.map(([state]) => state),
      limitsIfReleased: checked.map(([state, released]) => (released ? givenBack(state) : state)),
      release: async () => {
        await Promise.all(ofNumber.map((u) => u()));
      },
    };
  }

  takeVerification(clientIp: string): Promise<Taken> {
    return this.verifyPerIp.take(clientKey(clientIp));
  }

  async secondsUntilNextCode(phoneNumber: string): Promise<number> {
    const existing = await this.store.get(this.cooldownKey(phoneNumber));
    const remainingMs = existing === null ? 0 : Number(existing) - this.clock.now().getTime();
    return Math.max(1, Math.ceil(remainingMs / 1000));
  }
}
