import type { Database } from '../db/client.js';
import type { Clock } from '../lib/clock.js';
import { constraintName, sqlState } from '../lib/pg-errors.js';
import type { Random } from '../lib/random.js';
import { generateInviteCode } from '../referrals/invite-code.js';

export type SignedInUser = {
  id: number;
  phoneNumber: string;
  inviteCode: string;
  activatedInviteCode: string | null;
  isBlocked: boolean;
};

/** A token to store for the user in the same statement (see SessionService.newToken). */
export type NewToken = { hash: Buffer; expiresAt: Date | null };

const UNIQUE_VIOLATION = '23505';
const MAX_INVITE_CODE_TRIES = 20;
// A first sign-in racing ours commits while our statement runs: ours then sees
// neither its own row nor the other's, and simply runs again (a new snapshot).
const MAX_TRIES = MAX_INVITE_CODE_TRIES + 5;

type Row = {
  id: string | number;
  phone_number: string;
  invite_code: string;
  activated_invite_code: string | null;
  is_blocked: boolean;
  is_new: boolean;
};

// One round trip and one commit for a whole sign-in: find or create the user,
// store the token unless the account is blocked, and read what the answer shows.
const SIGN_IN_SQL = `
  with created as (
    insert into users (phone_number, invite_code, created_at) values ($1, $2, $3)
    on conflict (phone_number) do nothing
    returning id, phone_number, invite_code, referrer_id, is_blocked
  ), found as (
    select id, phone_number, invite_code, referrer_id, is_blocked, true as is_new from created
    union all
    select id, phone_number, invite_code, referrer_id, is_blocked, false from users
    where phone_number = $1 and not exists (select 1 from created)
  ), issued as (
    insert into api_tokens (user_id, token_hash, created_at, expires_at)
    select id, $4, $3, $5 from found where not is_blocked and $4::bytea is not null
    returning user_id
  )
  select f.id, f.phone_number, f.invite_code, r.invite_code as activated_invite_code,
    f.is_blocked, f.is_new
  from found f left join users r on r.id = f.referrer_id`;

export class UserService {
  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
    private readonly random: Random,
  ) {}

  /**
   * Finds the user of a number or creates them with a fresh invite code, and
   * stores `token` for them unless they are blocked, all in one statement: the
   * unique index on phone_number decides which of two racing first sign-ins
   * inserts, and the other finds the row it made.
   */
  async findOrCreate(
    phoneNumber: string,
    token: NewToken | null = null,
  ): Promise<{ user: SignedInUser; isNew: boolean }> {
    let collisions = 0;
    for (let attempt = 0; attempt < MAX_TRIES; attempt++) {
      let rows: Row[];
      try {
        rows = await this.database.query<Row>('sign_in', SIGN_IN_SQL, [
          phoneNumber,
          generateInviteCode(this.random),
          this.clock.now(),
          token?.hash ?? null,
          token?.expiresAt ?? null,
        ]);
      } catch (error) {
        // 36^6 codes: a collision is rare and simply draws another code.
        if (
          sqlState(error) === UNIQUE_VIOLATION &&
          constraintName(error) === 'users_invite_code_key'
        ) {
          if (++collisions >= MAX_INVITE_CODE_TRIES) break;
          continue;
        }
        throw error;
      }
      const [row] = rows;
      if (row) {
        return {
          user: {
            id: Number(row.id),
            phoneNumber: row.phone_number,
            inviteCode: row.invite_code,
            activatedInviteCode: row.activated_invite_code,
            isBlocked: row.is_blocked,
          },
          isNew: row.is_new,
        };
      }
    }
    throw new Error(
      collisions >= MAX_INVITE_CODE_TRIES
        ? 'could not allocate a unique invite code'
        : 'sign-in kept racing another; giving up',
    );
  }
}
