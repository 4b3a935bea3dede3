import { TurnBatch } from '../lib/turn-batch.js';
import type { FoundOrCreated, NewToken, SignInWrite, UserService, Users } from './user-service.js';

type Pending = SignInWrite & {
  resolve: (result: FoundOrCreated) => void;
  reject: (error: unknown) => void;
};

/** Sign-ins written by one statement at most. */
const MAX_BATCH = 64;

/**
 * Sign-ins written in batches (SIGN_IN_BATCHING), one statement at a time per
 * instance: the sign-ins that arrive while one runs go together in the next,
 * in one statement and one commit (UserService.findOrCreateEach). Under load
 * that saves a round trip, a statement, a WAL flush and the wake-up of a
 * database backend per sign-in: full sign-ins on PostgreSQL + Redis went from
 * 2,500-2,600/s to 4,300-4,400/s in the same minutes, and one batch at a time
 * beat several (bench/README.md). Alone, a sign-in waits for nothing but the
 * next turn of the event loop (about a millisecond).
 */
export class SignInBatcher implements Users {
  private pending: Pending[] = [];
  private writing = false;
  private flushScheduled = false;

  constructor(private readonly inner: UserService) {}

  findOrCreate(
    phoneNumber: string,
    token: NewToken | null = null,
    clientIp: string | null = null,
    deviceId: string | null = null,
  ): Promise<FoundOrCreated> {
    return new Promise((resolve, reject) => {
      this.pending.push({ phoneNumber, token, clientIp, deviceId, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // A timer, not setImmediate: on PGlite the statement holds the thread
        // while it runs, and in the check phase it ran before answers queued
        // there by the same turn, and before the sign-ins still to be read.
        // In the next timers phase every answer of this turn is already out.
        setTimeout(() => {
          this.flushScheduled = false;
          this.flush();
        }, 0);
      }
    });
  }

  /**
   * The blocked-number reads of one turn's request-codes in one statement: one
   * statement each was what a request-code cost the database (bench/README.md).
   */
  private readonly blockedReads = new TurnBatch<string, boolean>(async (numbers) => {
    const blocked = await this.inner.blockedAmong(numbers);
    return numbers.map((number) => blocked.has(number));
  });

  isBlocked(phoneNumber: string): Promise<boolean> {
    return this.blockedReads.add(phoneNumber);
  }

  private flush(): void {
    if (this.writing || this.pending.length === 0) return;
    this.writing = true;
    void this.write(this.takeBatch()).finally(() => {
      this.writing = false;
      this.flush();
    });
  }

  /**
   * The oldest pending sign-ins, one per number: a second sign-in of the same
   * number waits for the next batch, where it finds the user the first made.
   * Sorted by number, so that two batches lock rows in the same order.
   */
  private takeBatch(): Pending[] {
    const batch: Pending[] = [];
    const numbers = new Set<string>();
    const later: Pending[] = [];
    for (const entry of this.pending) {
      if (batch.length < MAX_BATCH && !numbers.has(entry.phoneNumber)) {
        numbers.add(entry.phoneNumber);
        batch.push(entry);
      } else {
        later.push(entry);
      }
    }
    this.pending = later;
    return batch.sort((a, b) => (a.phoneNumber < b.phoneNumber ? -1 : 1));
  }

  private async write(batch: Pending[]): Promise<void> {
    try {
      const results = await this.inner.findOrCreateEach(batch);
      batch.forEach((entry, i) => {
        const result = results[i];
        if (result === undefined || result instanceof Error) entry.reject(result);
        else entry.resolve(result);
      });
    } catch (error) {
      for (const entry of batch) entry.reject(error);
    }
  }
}
