import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import type { Clock } from '../lib/clock.js';
import { type Random, randomString } from '../lib/random.js';
import { SmsDeliveryError, type SmsSender } from '../sms/sms-sender.js';
import type { KeyValueStore } from '../store/key-value-store.js';
import type { LimitVerdict, SendLimiter } from './send-limiter.js';
import { SlidingWindow } from './sliding-window.js';

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

export type IssueResult =
  | { ok: true; code: string }
  | { ok: false; error: 'rate_limited'; retryAfterSeconds: number }
  | { ok: false; error: 'sms_delivery_failed' };

export type VerifyResult =
  | { ok: true }
  | { ok: false; error: 'code_expired' }
  | { ok: false; error: 'invalid_code'; attemptsLeft: number }
  | { ok: false; error: 'too_many_attempts'; retryAfterSeconds: number };

const DIGITS = '0123456789';

const HOUR_SECONDS = 3600;

/**
 * One-time codes. A code is stored only as an HMAC keyed by SECRET_KEY (a leak
 * of the store does not reveal live codes), expires after its TTL by the
 * injected clock, admits OTP_MAX_ATTEMPTS guesses, and is consumed by exactly
 * one successful verification. Requesting a new code replaces the old one.
 * Wrong guesses are also capped per number and hour, across codes.
 */
export class OtpService {
  private readonly failedGuesses: SlidingWindow;
  private readonly hmacKey: KeyObject;

  constructor(
    private readonly store: KeyValueStore,
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly sms: SmsSender,
    private readonly limiter: SendLimiter,
    private readonly settings: OtpSettings,
  ) {
    this.failedGuesses = new SlidingWindow(
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

  async issue(phoneNumber: string, clientIp: string): Promise<IssueResult> {
    const testCode = this.settings.testCodes.get(phoneNumber);
    if (testCode === undefined) {
      const verdict = await this.limiter.reserve(phoneNumber, clientIp);
      if (!verdict.ok)
        return { ok: false, error: 'rate_limited', retryAfterSeconds: verdict.retryAfterSeconds };
    }
    const code = testCode ?? randomString(this.random, DIGITS, this.settings.length);
    const codeId = this.random.bytes(9).toString('base64url');
    const expiresAtMs = this.clock.now().getTime() + this.settings.ttlSeconds * 1000;
    // The hash comes first: verification consumes the record by that prefix.
    const record = `${this.hash(phoneNumber, code)}.${expiresAtMs}.${codeId}`;
    // The record is written before the SMS goes out so that a fast user can
    // verify at once; it is withdrawn if the message was never delivered.
    await this.store.setAndDelete(this.codeKey(phoneNumber), record, this.settings.ttlSeconds, [
      this.attemptsKey(phoneNumber),
    ]);
    if (testCode !== undefined) return { ok: true, code };
    try {
      await this.sms.send(phoneNumber, `Your verification code: ${code}`);
    } catch (error) {
      await this.store.deleteIfEquals(this.codeKey(phoneNumber), record);
      if (error instanceof SmsDeliveryError) return { ok: false, error: 'sms_delivery_failed' };
      throw error;
    }
    return { ok: true, code };
  }

  async verify(phoneNumber: string, code: string): Promise<VerifyResult> {
    const ttlSeconds = this.settings.ttlSeconds;
    const codeKey = this.codeKey(phoneNumber);
    const attempts = { key: this.attemptsKey(phoneNumber), ttlSeconds };
    const guess = this.failedGuesses.enabled ? this.failedGuesses.prepareTake(phoneNumber) : null;
    // One step counts this guess (at the code, and in the hourly cap), reads
    // the code, and consumes it if the guess is right and within the code's
    // attempts: parallel guesses each take their own slot, so no burst compares
    // more than the caps allow, and of several right ones exactly one signs in.
    // The store compares the keyed hashes in constant time.
    const { counts, values, taken } = await this.store.incrementAndGet(
      guess ? [attempts, guess.counter] : [attempts],
      guess ? [codeKey, guess.previousKey] : [codeKey],
      {
        read: 0,
        prefix: `${this.hash(phoneNumber, code)}.`,
        whileCountAtMost: this.settings.maxAttempts,
      },
    );
    const [attempt = 0, guessCount = 0] = counts;
    const [record = null, previousGuesses = null] = values;
    const hourlyCap = guess ? guess.judge(guessCount, previousGuesses) : { ok: true as const };
    const result = await this.check(phoneNumber, record, attempt, taken, hourlyCap);
    // Only wrong guesses at a live code stay counted in the hourly cap.
    if (guess && (result.ok || result.error !== 'invalid_code'))
      await this.failedGuesses.refund(guess);
    return result;
  }

  private async check(
    phoneNumber: string,
    record: string | null,
    attempt: number,
    taken: boolean,
    hourlyCap: LimitVerdict,
  ): Promise<VerifyResult> {
    // A locked-out number learns nothing more, not even whether its code was
    // right (a right one is used up all the same).
    if (!hourlyCap.ok) {
      return {
        ok: false,
        error: 'too_many_attempts',
        retryAfterSeconds: hourlyCap.retryAfterSeconds,
      };
    }
    if (record === null) return { ok: false, error: 'code_expired' };
    const [, expiresAt = '0'] = record.split('.');
    if (Number(expiresAt) <= this.clock.now().getTime())
      return { ok: false, error: 'code_expired' };
    if (attempt > this.settings.maxAttempts) {
      return {
        ok: false,
        error: 'too_many_attempts',
        retryAfterSeconds: await this.limiter.secondsUntilNextCode(phoneNumber),
      };
    }
    if (taken) return { ok: true };
    return { ok: false, error: 'invalid_code', attemptsLeft: this.settings.maxAttempts - attempt };
  }
}
