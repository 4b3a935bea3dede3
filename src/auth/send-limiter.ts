export type LimitVerdict = { ok: true } | { ok: false; retryAfterSeconds: number };

/**
 * Where abuse controls plug into the code flow: caps on sending codes, and
 * on wrong guesses across codes. Counters live in the shared store.
 */
export interface SendLimiter {
  /** Takes one send from every budget that applies, or says when to retry. */
  reserve(phoneNumber: string, clientIp: string): Promise<LimitVerdict>;
  /** Whether this number may still guess (caps wrong guesses across codes). */
  checkGuesses(phoneNumber: string): Promise<LimitVerdict>;
  recordFailedGuess(phoneNumber: string): Promise<void>;
  /** Seconds until this number may be sent a new code (at least 1). */
  secondsUntilNextCode(phoneNumber: string): Promise<number>;
}

/** No limits at all. */
export const unlimited: SendLimiter = {
  reserve: async () => ({ ok: true }),
  checkGuesses: async () => ({ ok: true }),
  recordFailedGuess: async () => {},
  secondsUntilNextCode: async () => 1,
};
