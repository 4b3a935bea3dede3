export type LimitVerdict = { ok: true } | { ok: false; retryAfterSeconds: number };

/**
 * Where abuse controls plug into the code flow: caps on sending codes.
 * Counters live in the shared store. (Wrong guesses are capped by OtpService,
 * which counts them in the same step as it reads the code.)
 */
export interface SendLimiter {
  /** Takes one send from every budget that applies, or says when to retry. */
  reserve(phoneNumber: string, clientIp: string): Promise<LimitVerdict>;
  /** Seconds until this number may be sent a new code (at least 1). */
  secondsUntilNextCode(phoneNumber: string): Promise<number>;
}

/** No limits at all. */
export const unlimited: SendLimiter = {
  reserve: async () => ({ ok: true }),
  secondsUntilNextCode: async () => 1,
};
