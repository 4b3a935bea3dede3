import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../lib/clock.js';
import { type Random, randomString } from '../lib/random.js';
import { SmsDeliveryError, type SmsSender } from '../sms/sms-sender.js';
import type { KeyValueStore } from '../store/key-value-store.js';
import type { SendLimiter } from './send-limiter.js';

export type OtpSettings = {
  secretKey: string;
  length: number;
  ttlSeconds: number;
  maxAttempts: number;
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

/**
 * One-time codes. A code is stored only as an HMAC keyed by SECRET_KEY (a leak
 * of the store does not reveal live codes), expires after its TTL by the
 * injected clock, admits OTP_MAX_ATTEMPTS guesses, and is consumed by exactly
 * one successful verification. Requesting a new code replaces the old one.
 */
export class OtpService {
  constructor(
    private readonly store: KeyValueStore,
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly sms: SmsSender,
    private readonly limiter: SendLimiter,
    private readonly settings: OtpSettings,
  ) {}

  private codeKey(phoneNumber: string): string {
    return `otp:${phoneNumber}`;
  }

  private attemptsKey(phoneNumber: string, codeId: string): string {
    return `otp-attempts:${phoneNumber}:${codeId}`;
  }

  private hash(phoneNumber: string, code: string): Buffer {
    return createHmac('sha256', this.settings.secretKey).update(`${phoneNumber}\n${code}`).digest();
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
    const record = `${codeId}.${expiresAtMs}.${this.hash(phoneNumber, code).toString('base64url')}`;
    // The record is written before the SMS goes out so that a fast user can
    // verify at once; it is withdrawn if the message was never delivered.
    await this.store.set(this.codeKey(phoneNumber), record, this.settings.ttlSeconds);
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
    const key = this.codeKey(phoneNumber);
    const record = await this.store.get(key);
    if (record === null) return { ok: false, error: 'code_expired' };
    const [codeId = '', expiresAt = '0', storedHash = ''] = record.split('.');
    const nowMs = this.clock.now().getTime();
    const remainingSeconds = Math.ceil((Number(expiresAt) - nowMs) / 1000);
    if (remainingSeconds <= 0) return { ok: false, error: 'code_expired' };

    const lockout = await this.limiter.checkGuesses(phoneNumber);
    if (!lockout.ok) {
      return {
        ok: false,
        error: 'too_many_attempts',
        retryAfterSeconds: lockout.retryAfterSeconds,
      };
    }
    // The attempt is counted before the comparison: parallel guesses each take
    // their own slot, so no burst of requests can compare more than maxAttempts.
    const attempt = await this.store.increment(
      this.attemptsKey(phoneNumber, codeId),
      remainingSeconds,
    );
    if (attempt > this.settings.maxAttempts) {
      return {
        ok: false,
        error: 'too_many_attempts',
        retryAfterSeconds: await this.limiter.secondsUntilNextCode(phoneNumber),
      };
    }
    const expected = Buffer.from(storedHash, 'base64url');
    const actual = this.hash(phoneNumber, code);
    // Constant-time comparison: response timing must not reveal matching prefixes.
    if (expected.length === actual.length && timingSafeEqual(expected, actual)) {
      // Compare-and-delete: of concurrent verifications with the right code,
      // exactly one removes the record and signs in.
      if (await this.store.deleteIfEquals(key, record)) return { ok: true };
      return { ok: false, error: 'code_expired' };
    }
    await this.limiter.recordFailedGuess(phoneNumber);
    return { ok: false, error: 'invalid_code', attemptsLeft: this.settings.maxAttempts - attempt };
  }
}
