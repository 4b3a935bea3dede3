/** The source of "now". Production uses the system clock; tests advance a fake one. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
