import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { users } from '../db/schema.js';
import type { Clock } from '../lib/clock.js';
import { constraintName, sqlState } from '../lib/pg-errors.js';
import type { Random } from '../lib/random.js';
import { generateInviteCode } from '../referrals/invite-code.js';

export type SignedInUser = { id: number; isBlocked: boolean };

const UNIQUE_VIOLATION = '23505';
const MAX_INVITE_CODE_TRIES = 20;

export class UserService {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly random: Random,
  ) {}

  /**
   * Finds the user of a number or creates them with a fresh invite code, in one
   * statement: the unique index on phone_number decides which of two racing
   * first sign-ins inserts, and the other finds the row it made.
   */
  async findOrCreate(phoneNumber: string): Promise<{ user: SignedInUser; isNew: boolean }> {
    for (let attempt = 0; attempt < MAX_INVITE_CODE_TRIES; attempt++) {
      try {
        const [created] = await this.db
          .insert(users)
          .values({
            phoneNumber,
            inviteCode: generateInviteCode(this.random),
            createdAt: this.clock.now(),
          })
          .onConflictDoNothing({ target: users.phoneNumber })
          .returning({ id: users.id, isBlocked: users.isBlocked });
        if (created) return { user: created, isNew: true };
        const [existing] = await this.db
          .select({ id: users.id, isBlocked: users.isBlocked })
          .from(users)
          .where(eq(users.phoneNumber, phoneNumber));
        if (existing) return { user: existing, isNew: false };
      } catch (error) {
        // 36^6 codes: a collision is rare and simply draws another code.
        if (
          sqlState(error) === UNIQUE_VIOLATION &&
          constraintName(error) === 'users_invite_code_key'
        ) {
          continue;
        }
        throw error;
      }
    }
    throw new Error('could not allocate a unique invite code');
  }
}
