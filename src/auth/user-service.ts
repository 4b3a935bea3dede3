import type { Database } from '../db/client.js';
import { userCreatedCtes } from '../events/outbox.js';
import type { Clock } from '../lib/clock.js';
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

export type FoundOrCreated = { user: SignedInUser; isNew: boolean };

/**
 * A sign-in to write: with `clientIp` it is audited; without a token it stores
 * none. A user it creates keeps `clientIp` and `deviceId` (fraud signals).
 */
export type SignInWrite = {
  phoneNumber: string;
  token: NewToken | null;
  clientIp: string | null;
  deviceId?: string | null;
};

/** Users as sign-in needs them (src/auth/sign-in-batcher.ts wraps it). */
export interface Users {
  /**
   * Finds the user of a number or creates them with a fresh invite code, and
   * stores `token` for them unless they are blocked. With `clientIp` this is
   * a sign-in, audited in the same statement.
   */
  findOrCreate(
    phoneNumber: string,
    token?: NewToken | null,
    clientIp?: string | null,
    deviceId?: string | null,
  ): Promise<FoundOrCreated>;
  /** Whether the number belongs to a blocked user (false for a number without one). */
  isBlocked(phoneNumber: string): Promise<boolean>;
}

type Row = {
  id: string | number;
  phone_number: string;
  invite_code: string;
  activated_invite_code: string | null;
  is_blocked: boolean;
  is_new: boolean;
};

// A number gets no row back when the invite code drawn for it was taken (36^6
// codes: rare) or when a first sign-in of the same number on another
// connection committed while our statement ran, so that ours sees neither its
// own row nor the other's. Either way it runs again: a new code, a new snapshot.
const MAX_TRIES = 20;

// One round trip and one commit for a batch of sign-ins: find or create each
// user, store each token unless the account is blocked, write each sign-in's
// audit entry (a refused one for a blocked account), and read what each
// answer shows. `on conflict do nothing` without a target covers both unique
// columns: a number that exists is found instead, a drawn invite code that
// exists leaves the number without a row for now. A new user keeps the
// client's IP and device id (fraud signals, src/events/fraud-signals.ts); each
// sign-in's audit entry has them too. Only a sign-in (it comes
// with the client's IP) is audited: a blocked account's as refused, one with
// a token as a sign-in; the CLI making an admin, or a withheld code used after
// unblocking, stores no token and writes nothing. Each user created gets its
// `user.created` event (and deliveries to $8, WEBHOOK_URLS) in the statement.
// Users are looked up by lateral subqueries with LIMIT 1, which no plan turns
// into a hash join over all users (src/db/plan-once.ts).
const SIGN_IN_SQL = `
  with input as (
    select * from unnest($1::text[], $2::text[], $4::text[], $5::timestamptz[], $6::text[],
      $7::text[])
      as t(phone_number, invite_code, token_hash, expires_at, client_ip, device_id)
  ), created as (
    insert into users (phone_number, invite_code, created_at, signup_ip, signup_device_id)
    select phone_number, invite_code, $3, client_ip, device_id from input
    on conflict do nothing
    returning id, phone_number, invite_code, referrer_id, is_blocked, created_at
  )${userCreatedCtes('$3', '$8::text[]')}, found as (
    select id, phone_number, invite_code, referrer_id, is_blocked, true as is_new from created
    union all
    select u.id, u.phone_number, u.invite_code, u.referrer_id, u.is_blocked, false
    from input i cross join lateral (
      select x.id, x.phone_number, x.invite_code, x.referrer_id, x.is_blocked
      from users x where x.phone_number = i.phone_number limit 1
    ) u
    where not exists (select 1 from created c where c.phone_number = i.phone_number)
  ), issued as (
    insert into api_tokens (user_id, token_hash, created_at, expires_at)
    select f.id, decode(i.token_hash, 'hex'), $3, i.expires_at
    from found f join input i on i.phone_number = f.phone_number
    where not f.is_blocked and i.token_hash is not null
    returning user_id
  ), audited as (
    insert into audit_log (at, type, actor, actor_id, user_id, ip, details)
    select $3,
      case when f.is_blocked then 'sign_in_failed' else 'sign_in' end,
      case when f.is_blocked then 'anonymous' else 'user' end,
      case when f.is_blocked then null else f.id end,
      f.id, i.client_ip,
      case when f.is_blocked
        then jsonb_strip_nulls(jsonb_build_object('phone_number', f.phone_number,
          'reason', 'blocked', 'device_id', i.device_id))
        else jsonb_strip_nulls(jsonb_build_object('new_user', f.is_new, 'device_id', i.device_id))
        end
    from found f join input i on i.phone_number = f.phone_number
    where i.client_ip is not null and (f.is_blocked or i.token_hash is not null)
  )
  select f.id, f.phone_number, f.invite_code, r.invite_code as activated_invite_code,
    f.is_blocked, f.is_new
  from found f left join lateral (
    select x.invite_code from users x where x.id = f.referrer_id limit 1
  ) r on true`;

/**
 * Users, read and written in the database alone. The unique index on
 * phone_number decides which of two racing first sign-ins inserts; the other
 * finds the row it made. A sign-in changes no cached read (a new token is
 * unknown to every cache, a blocked user gets none), so it announces nothing.
 */
export class UserService implements Users {
  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
    private readonly random: Random,
    /** WEBHOOK_URLS: each new user's `user.created` event is to be delivered to each. */
    private readonly webhookUrls: string[] = [],
  ) {}

  async findOrCreate(
    phoneNumber: string,
    token: NewToken | null = null,
    clientIp: string | null = null,
    deviceId: string | null = null,
  ): Promise<FoundOrCreated> {
    const [result] = await this.findOrCreateEach([{ phoneNumber, token, clientIp, deviceId }]);
    if (result instanceof Error || result === undefined) throw result;
    return result;
  }

  /**
   * Writes several sign-ins of distinct numbers in one statement (one round
   * trip, one commit); each answer is the sign-in's result, or the error that
   * stopped it. Callers sort by number, so that two statements lock rows in
   * the same order.
   */
  async findOrCreateEach(writes: readonly SignInWrite[]): Promise<(FoundOrCreated | Error)[]> {
    const results = new Map<SignInWrite, FoundOrCreated | Error>();
    let left = [...writes];
    try {
      for (let attempt = 0; attempt < MAX_TRIES && left.length > 0; attempt++) {
        const rows = await this.database.query<Row>('sign_in', SIGN_IN_SQL, [
          left.map((entry) => entry.phoneNumber),
          left.map(() => generateInviteCode(this.random)),
          this.clock.now(),
          left.map((entry) => entry.token?.hash.toString('hex') ?? null),
          left.map((entry) => entry.token?.expiresAt ?? null),
          left.map((entry) => entry.clientIp),
          left.map((entry) => entry.deviceId ?? null),
          this.webhookUrls,
        ]);
        const byNumber = new Map(rows.map((row) => [row.phone_number, row]));
        left = left.filter((entry) => {
          const row = byNumber.get(entry.phoneNumber);
          if (!row) return true;
          results.set(entry, {
            user: {
              id: Number(row.id),
              phoneNumber: row.phone_number,
              inviteCode: row.invite_code,
              activatedInviteCode: row.activated_invite_code,
              isBlocked: row.is_blocked,
            },
            isNew: row.is_new,
          });
          return false;
        });
      }
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      for (const entry of left) results.set(entry, failure);
      left = [];
    }
    // Twenty draws in a row that all hit taken codes: the code space is nearly full.
    const exhausted = new Error('could not allocate a unique invite code');
    return writes.map((entry) => results.get(entry) ?? exhausted);
  }

  /**
   * Which of these numbers belong to blocked users, in one statement (the
   * request-codes of a turn, src/auth/sign-in-batcher.ts); a number without a
   * user is not blocked.
   */
  async blockedAmong(phoneNumbers: readonly string[]): Promise<Set<string>> {
    const rows = await this.database.query<{ phone_number: string }>(
      'users_blocked_among',
      'select phone_number from users where phone_number = any($1::text[]) and is_blocked',
      [phoneNumbers],
    );
    return new Set(rows.map((row) => row.phone_number));
  }

  /** A plain read by the unique index, outside the sign-in batches. */
  async isBlocked(phoneNumber: string): Promise<boolean> {
    const rows = await this.database.query<{ is_blocked: boolean }>(
      'user_is_blocked',
      'select is_blocked from users where phone_number = $1',
      [phoneNumber],
    );
    return rows[0]?.is_blocked ?? false;
  }
}
