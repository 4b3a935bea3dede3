export type LimitVerdict = { ok: true } | { ok: false; retryAfterSeconds: number };

/** What a budget's `take` answers: counted, with a way to give it back, or refused. */
export type Taken =
  | { ok: true; giveBack(): Promise<void> }
  | { ok: false; retryAfterSeconds: number };

/** A budget of events per subject (a number, a client, everyone). */
export interface Budget {
  take(subject: string): Promise<Taken>;
}

/** Which send limit refused a code: they are told apart in the answer. */
export type SendLimit = 'cooldown' | 'phone' | 'ip' | 'global';

export type Reservation =
  | {
      ok: true;
      /**
       * Gives back what the number was charged (its cooldown and its hourly
       * cap) when no code reached it after all. The per-client and global
       * budgets keep the request: a provider call was made.
       */
      release(): Promise<void>;
    }
  | { ok: false; limit: SendLimit; retryAfterSeconds: number };

/**
 * Where abuse controls plug into the code flow: caps on sending codes, and
 * the per-client cap on verifications. Counters live in the shared store.
 * (Wrong guesses per number are capped by OtpService, which counts them in the
 * same step as it reads the code.)
 */
export interface SendLimiter {
  /** Takes one send from every budget that applies, or says which refused and when to retry. */
  reserve(phoneNumber: string, clientIp: string): Promise<Reservation>;
  /** Seconds until this number may be sent a new code (at least 1). */
  secondsUntilNextCode(phoneNumber: string): Promise<number>;
  /**
   * Takes one verification from the client's budget. Called in the same turn
   * as the guess itself, so that on Redis both go out in one round trip.
   */
  takeVerification(clientIp: string): Promise<Taken>;
}

const free: Taken = { ok: true, giveBack: async () => {} };

/** No limits at all. */
export const unlimited: SendLimiter = {
  reserve: async () => ({ ok: true, release: async () => {} }),
  secondsUntilNextCode: async () => 1,
  takeVerification: async () => free,
};
