export type LimitVerdict = { ok: true } | { ok: false; retryAfterSeconds: number };

/**
 * How much of one limit is left after a request, for the RateLimit headers:
 * `quota` events in any `windowSeconds`, `remaining` of them left, and
 * `resetSeconds` until one more comes back (0 when none is used; when none
 * is left, when one more fits: a refusal's retry_after).
 */
export type LimitUsage = {
  quota: number;
  windowSeconds: number;
  remaining: number;
  resetSeconds: number;
};

/** A limit's usage under its name in the RateLimit headers (`phone`, `ip`…). */
export type LimitState = LimitUsage & { name: string };

/** The usage once the event counted is given back. */
export function givenBack(state: LimitState): LimitState {
  const remaining = Math.min(state.quota, state.remaining + 1);
  return { ...state, remaining, resetSeconds: remaining === state.quota ? 0 : state.resetSeconds };
}

/** What a budget's `take` answers: counted, with a way to give it back, or refused; with its usage unless it is off. */
export type Taken =
  | { ok: true; giveBack(): Promise<void>; usage?: LimitUsage }
  | { ok: false; retryAfterSeconds: number; usage: LimitUsage };

/** A budget of events per subject (a number, a client, everyone). */
export interface Budget {
  take(subject: string): Promise<Taken>;
}

/** Which send limit refused a code: they are told apart in the answer. */
export type SendLimit = 'cooldown' | 'phone' | 'ip' | 'region' | 'global';

export type Reservation =
  | {
      ok: true;
      /** The usage of each limit checked, after this send. */
      limits: LimitState[];
      /** The same once `release` has given back what the number was charged. */
      limitsIfReleased: LimitState[];
      /**
       * Gives back what the number was charged (its cooldown and its hourly
       * cap) when no code reached it after all. The per-client, per-region
       * and global budgets keep the request: a provider call was made.
       */
      release(): Promise<void>;
    }
  | { ok: false; limit: SendLimit; retryAfterSeconds: number; limits: LimitState[] };

/**
 * Where abuse controls plug into the code flow: caps on sending codes, and
 * the per-client cap on verifications. Counters live in the shared store.
 * (Wrong guesses per number are capped by OtpService, which counts them in the
 * same step as it reads the code.)
 */
export interface SendLimiter {
  /**
   * Takes one send from every budget that applies, or says which refused and
   * when to retry. `region` is the number's ISO region (undefined for
   * non-geographic numbers, which count as a region not listed).
   */
  reserve(phoneNumber: string, clientIp: string, region: string | undefined): Promise<Reservation>;
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
  reserve: async () => ({ ok: true, limits: [], limitsIfReleased: [], release: async () => {} }),
  secondsUntilNextCode: async () => 1,
  takeVerification: async () => free,
};
