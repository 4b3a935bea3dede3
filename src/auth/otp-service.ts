import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import type { Clock } from '../lib/clock.js';
import { type Random, randomString } from '../lib/random.js';
import { SmsDeliveryError, type SmsSender } from '../sms/sms-sender.js';
import type { Guess, KeyValueStore } from '../store/key-value-store.js';
import {
  givenBack,
  type LimitState,
  type SendLimit,
  type SendLimiter,
  type Taken,
} from './send-limiter.js';
import { SlidingLog, secondsOf } from './sliding-log.js';

export type OtpSettings = {
  secretKey: string;
  length: number;
  ttlSeconds: number;
  maxAttempts: number;
  /** Wrong guesses allowed per number in any hour, across its codes (0: no cap). */
  maxFailedPerHour: number;
  /** E.164 number -> fixed code: no SMS, no send caps (CI and app review). */
  testCodes: Map<string, string>;
};

/** Every result says how much of each limit it checked is left (for the RateLimit headers). */
type WithLimits = { limits: LimitState[] };

export type IssueResult =
  /** `withheld`: issued to a blocked account, and not sent (see `issue`). */
  (
    | { ok: true; code: string; withheld: boolean }
    | { ok: false; error: 'rate_limited'; limit: SendLimit; retryAfterSeconds: number }
    | { ok: false; error: 'sms_delivery_failed' }
  ) &
    WithLimits;

/** Which cap refused a guess: the code's attempts, the number's hourly cap, or the client's. */
export type AttemptsLimit = 'code' | 'number' | 'client';

export type VerifyResult =
  /** `withheld`: the code was issued to a blocked account and never sent; it must not sign in. */
  (
    | { ok: true; withheld: boolean }
    | { ok: false; error: 'code_expired' }
    | { ok: false; error: 'invalid_code'; attemptsLeft: number }
    | { ok: false; error: 'too_many_attempts'; limit: AttemptsLimit; retryAfterSeconds: number }
  ) &
    WithLimits;

/** The names of the verify limits in the RateLimit headers: per code, per number, per client. */
const ATTEMPTS_POLICY: Record<AttemptsLimit, string> = {
  code: 'code',
  number: 'phone',
  client: 'ip',
};

const DIGITS = '0123456789';

const HOUR_SECONDS = 3600;

/** The last field of a code record issued to a blocked account: it is never sent, and never signs in. */
const WITHHELD = 'withheld';

/**
 * One-time codes. A code is stored only as an HMAC keyed by SECRET_KEY (a leak
 * of the store does not reveal live codes), expires after its TTL by the
 * injected clock, admits OTP_MAX_ATTEMPTS guesses, and is consumed by exactly
 * one successful verification. Requesting a new code replaces the old one.
 * Wrong guesses are also capped per number in any hour, across codes, exactly
 * (a log of their times), and verifications per client.
 */
export class OtpService {
  private readonly failedGuesses: SlidingLog;
  private readonly hmacKey: KeyObject;
  /** A moving average of how long the SMS provider takes, to answer a withheld code as slowly. */
  private typicalSendMs = 0;

  constructor(
    private readonly store: KeyValueStore,
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly sms: SmsSender,
    private readonly limiter: SendLimiter,
    private readonly settings: OtpSettings,
  ) {
    this.failedGuesses = new SlidingLog(
      store,
      clock,
      'guess',
      settings.maxFailedPerHour,
      HOUR_SECONDS,
    );
    this.hmacKey = createSecretKey(Buffer.from(settings.secretKey));
  }

  // The number is the hash tag of every key of its code, so that verification
  // can count and read them in one step on a Redis Cluster too.
  private codeKey(phoneNumber: string): string {
    return `otp:{${phoneNumber}}`;
  }

  /** Guesses at the current code; reset when a new code is stored, removed with the code when it is used. */
  private attemptsKey(phoneNumber: string): string {
    return `otp:{${phoneNumber}}:attempts`;
  }

  /** HMAC-SHA-256 truncated to 128 bits (as RFC 4868): the store compares it byte by byte. */
  private hash(phoneNumber: string, code: string): string {
    return createHmac('sha256', this.hmacKey)
      .update(`${phoneNumber}\n${code}`)
      .digest()
      .subarray(0, 16)
      .toString('base64url');
  }

  /**
   * Issues a code and sends it. `isBlocked` is asked once the send limits
   * have let the request through: a blocked number is sent nothing, yet is
   * answered as any other (same limits, same answer, a code that never signs
   * in), so that request-code does not tell who is blocked.
   */
  async issue(
    phoneNumber: string,
    region: string | undefined,
    clientIp: string,
    isBlocked: () => Promise<boolean> = async () => false,
  ): Promise<IssueResult> {
    const testCode = this.settings.testCodes.get(phoneNumber);
    let release = async () => {};
    let limits: LimitState[] = [];
    let limitsIfReleased: LimitState[] = [];
    if (testCode === undefined) {
      const reservation = await this.limiter.reserve(phoneNumber, clientIp, region);
      if (!reservation.ok) {
        return {
          ok: false,
          error: 'rate_limited',
          limit: reservation.limit,
          retryAfterSeconds: reservation.retryAfterSeconds,
          limits: reservation.limits,
        };
      }
      release = reservation.release;
      ({ limits, limitsIfReleased } = reservation);
    }
    // Test numbers send no SMS anyway; a blocked one is refused at verification.
    let withheld = false;
    try {
      withheld = testCode === undefined && (await isBlocked());
    } catch (error) {
      await release();
      throw error;
    }
    const code = testCode ?? randomString(this.random, DIGITS, this.settings.length);
    const codeId = this.random.bytes(9).toString('base64url');
    const expiresAtMs = this.clock.now().getTime() + this.settings.ttlSeconds * 1000;
    // The hash comes first: verification consumes the record by that prefix.
    const record = `${this.hash(phoneNumber, code)}.${expiresAtMs}.${codeId}${withheld ? `.${WITHHELD}` : ''}`;
    // The record is written before the SMS goes out so that a fast user can
    // verify at once; it is withdrawn if the message was never delivered.
    await this.store.setAndDelete(this.codeKey(phoneNumber), record, this.settings.ttlSeconds, [
      this.attemptsKey(phoneNumber),
    ]);
    if (testCode !== undefined) return { ok: true, code, withheld: false, limits };
    if (withheld) {
      // As long as a message would have taken, so that the answer's timing
      // does not tell a blocked number either (nor do its limits: the same as any).
      await new Promise((resolve) => setTimeout(resolve, this.typicalSendMs));
      return { ok: true, code, withheld: true, limits };
    }
    const startedMs = this.clock.now().getTime();
    try {
      await this.sms.send(phoneNumber, `Your verification code: ${code}`);
    } catch (error) {
      // No code reached the number: it costs the number nothing (cooldown,
      // hourly cap), so the user may retry at once.
      await Promise.all([this.store.deleteIfEquals(this.codeKey(phoneNumber), record), release()]);
      if (error instanceof SmsDeliveryError)
        return { ok: false, error: 'sms_delivery_failed', limits: limitsIfReleased };
      throw error;
    }
    const tookMs = this.clock.now().getTime() - startedMs;
    this.typicalSendMs = Math.round(this.typicalSendMs * 0.8 + tookMs * 0.2);
    return { ok: true, code, withheld: false, limits };
  }

  /**
   * Checks a guess. One step in the store counts it (at the code, and if wrong
   * in the number's hourly log), reads the code, and consumes it if the guess
   * is right and within the code's attempts: parallel guesses each take their
   * own slot, so no burst compares more than the caps allow, and of several
   * right ones exactly one signs in. The store compares the keyed hashes in
   * constant time. A guess at a number without a live code creates nothing.
   * The client's budget is taken in the same turn, so on Redis both go out
   * in one round trip.
   */
  async verify(phoneNumber: string, code: string, clientIp: string): Promise<VerifyResult> {
    const guess: Guess = {
      key: this.codeKey(phoneNumber),
      prefix: `${this.hash(phoneNumber, code)}.`,
      attemptsKey: this.attemptsKey(phoneNumber),
      maxAttempts: this.settings.maxAttempts,
      ...(this.failedGuesses.enabled ? { failures: this.failedGuesses.of(phoneNumber) } : {}),
    };
    const nowMs = this.clock.now().getTime();
    const [client, result] = await Promise.all([
      this.limiter.takeVerification(clientIp),
      this.store.guess(guess, nowMs),
    ]);
    if (!client.ok) {
      // Refused for the client: the guess must cost the number nothing. The
      // answer says nothing about the guess, so a right one used up here is
      // only lost to a client that could not sign in now anyway.
      if (result.outcome === 'wrong')
        await this.store.giveBackGuess(guess, result.record, result.failureId);
      const { retryAfterSeconds, usage } = client;
      const limits = [{ ...usage, name: ATTEMPTS_POLICY.client }];
      return { ok: false, error: 'too_many_attempts', limit: 'client', retryAfterSeconds, limits };
    }
    const ofClient = clientState(client);
    if ('record' in result && this.expired(result.record, nowMs)) {
      // Only wrong guesses at a live code count against the number.
      if (result.outcome === 'wrong')
        await this.store.giveBackGuess(guess, result.record, result.failureId);
      return { ok: false, error: 'code_expired', limits: ofClient };
    }
    switch (result.outcome) {
      case 'capped':
        // A locked-out number learns nothing more, not even whether a code is live.
        await client.giveBack();
        return this.tooMany('number', secondsOf(result.retryAfterMs));
      case 'absent':
        return { ok: false, error: 'code_expired', limits: ofClient };
      case 'exhausted': {
        const [retryAfterSeconds] = await Promise.all([
          this.limiter.secondsUntilNextCode(phoneNumber),
          client.giveBack(),
        ]);
        return this.tooMany('code', retryAfterSeconds);
      }
      case 'taken': {
        // A sign-in is not a failed verification: it costs the client nothing.
        await client.giveBack();
        return {
          ok: true,
          withheld: result.record.endsWith(`.${WITHHELD}`),
          limits: ofClient.map(givenBack),
        };
      }
      case 'wrong': {
        const attemptsLeft = this.settings.maxAttempts - result.attempt;
        // The code's attempts go with it: they come back when it expires and a new one is sent.
        const ofCode: LimitState = {
          name: ATTEMPTS_POLICY.code,
          quota: this.settings.maxAttempts,
          windowSeconds: this.settings.ttlSeconds,
          remaining: attemptsLeft,
          resetSeconds: Math.max(1, Math.ceil((this.expiresAtMs(result.record) - nowMs) / 1000)),
        };
        // The number's hourly cap on wrong guesses, which this one counted toward.
        const ofNumber: LimitState[] = result.failures
          ? [
              {
                ...this.failedGuesses.usage(
                  result.failures.held,
                  result.failures.oldestAtMs,
                  nowMs,
                ),
                name: ATTEMPTS_POLICY.number,
              },
            ]
          : [];
        return {
          ok: false,
          error: 'invalid_code',
          attemptsLeft,
          limits: [ofCode, ...ofNumber, ...ofClient],
        };
      }
    }
  }

  /** A refusal by the code's or the number's cap, and its limit: none left, one more in `retryAfterSeconds`. */
  private tooMany(limit: 'code' | 'number', retryAfterSeconds: number): VerifyResult {
    const shape = {
      code: { quota: this.settings.maxAttempts, windowSeconds: this.settings.ttlSeconds },
      number: { quota: this.settings.maxFailedPerHour, windowSeconds: HOUR_SECONDS },
    }[limit];
    const state = {
      ...shape,
      name: ATTEMPTS_POLICY[limit],
      remaining: 0,
      resetSeconds: retryAfterSeconds,
    };
    return { ok: false, error: 'too_many_attempts', limit, retryAfterSeconds, limits: [state] };
  }

  /** By the injected clock: the store's TTL follows real time, which a test's clock does not. */
  private expired(record: string, nowMs: number): boolean {
    return this.expiresAtMs(record) <= nowMs;
  }

  private expiresAtMs(record: string): number {
    const [, expiresAt = '0'] = record.split('.');
    return Number(expiresAt);
  }
}

/** The client's verify limit, as the headers name it (none when it is off). */
function clientState(client: Extract<Taken, { ok: true }>): LimitState[] {
  return client.usage ? [{ ...client.usage, name: ATTEMPTS_POLICY.client }] : [];
}
