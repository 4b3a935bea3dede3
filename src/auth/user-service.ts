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

type FoundOrCreated = { user: SignedInUser; isNew: boolean };

type Pending = {
  phoneNumber: string;
  token: NewToken | null;
  clientIp: string | null;
  resolve: (result: FoundOrCreated) => void;
  reject: (error: unknown) => void;
};

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
/** Sign-ins written by one statement at most. */
const MAX_BATCH = 64;

// One round trip and one commit for a batch of sign-ins: find or create each
// user, store each token unless the account is blocked, write each sign-in's
// audit entry (a refused one for a blocked account), and read what each
// answer shows. `on conflict do nothing` without a target covers both unique
// columns: a number that exists is found instead, a drawn invite code that
// exists leaves the number without a row for now. Only a sign-in (it comes
// with the client's IP) is audited: a blocked account's as refused, one with
// a token as a sign-in; the CLI making an admin, or a withheld code used after
// unblocking, stores no token and writes nothing. Each user created gets its
// `user.created` event (and deliveries to $7, WEBHOOK_URLS) in the statement.
const SIGN_IN_SQL = `
  with input as (
    select * from unnest($1::text[], $2::text[], $4::text[], $5::timestamptz[], $6::text[])
      as t(phone_number, invite_code, token_hash, expires_at, client_ip)
  ), created as (
    insert into users (phone_number, invite_code, created_at)
    select phone_number, invite_code, $3 from input
    on conflict do nothing
    returning id, phone_number, invite_code, referrer_id, is_blocked, created_at
  )${userCreatedCtes('$3', '$7::text[]')}, found as (
    select id, phone_number, invite_code, referrer_id, is_blocked, true as is_new from created
    union all
    select u.id, u.phone_number, u.invite_code, u.referrer_id, u.is_blocked, false
    from input i join users u on u.phone_number = i.phone_number
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
        then jsonb_build_object('phone_number', f.phone_number, 'reason', 'blocked')
        else jsonb_build_object('new_user', f.is_new) end
    from found f join input i on i.phone_number = f.phone_number
    where i.client_ip is not null and (f.is_blocked or i.token_hash is not null)
  )
  select f.id, f.phone_number, f.invite_code, r.invite_code as activated_invite_code,
    f.is_blocked, f.is_new
  from found f left join users r on r.id = f.referrer_id`;

/**
 * Finds or creates the user of each sign-in and stores its token.
 *
 * Sign-ins are written in batches, one statement at a time per instance: the
 * sign-ins that arrive while one runs go together in the next, in one
 * statement and one commit. Under load that saves a round trip, a statement,
 * a WAL flush and the wake-up of a database backend per sign-in: full
 * sign-ins on PostgreSQL + Redis went from 2,500-2,600/s to 4,300-4,400/s in
 * the same minutes, and one batch at a time beat several (bench/README.md).
 * Alone, a sign-in waits for nothing but the next turn of the event loop
 * (about a millisecond).
 */
export class UserService {
  private pending: Pending[] = [];
  private writing = false;
  private flushScheduled = false;

  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
    private readonly random: Random,
    /** WEBHOOK_URLS: each new user's `user.created` event is to be delivered to each. */
    private readonly webhookUrls: string[] = [],
  ) {}

  /**
   * Finds the user of a number or creates them with a fresh invite code, and
   * stores `token` for them unless they are blocked. With `clientIp` this is
   * a sign-in, audited in the same statement. The unique index
   * on phone_number decides which of two racing first sign-ins inserts; the
   * other finds the row it made.
   */
  findOrCreate(
    phoneNumber: string,
    token: NewToken | null = null,
    clientIp: string | null = null,
  ): Promise<FoundOrCreated> {
    return new Promise((resolve, reject) => {
      this.pending.push({ phoneNumber, token, clientIp, resolve, reject });
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
   * Whether the number belongs to a blocked user (false for a number without
   * one). A plain read by the unique index, outside the sign-in batches.
   */
  async isBlocked(phoneNumber: string): Promise<boolean> {
    const rows = await this.database.query<{ is_blocked: boolean }>(
      'user_is_blocked',
      'select is_blocked from users where phone_number = $1',
      [phoneNumber],
    );
    return rows[0]?.is_blocked ?? false;
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
    let left = batch;
    try {
      for (let attempt = 0; attempt < MAX_TRIES && left.length > 0; attempt++) {
        const rows = await this.database.query<Row>('sign_in', SIGN_IN_SQL, [
          left.map((entry) => entry.phoneNumber),
          left.map(() => generateInviteCode(this.random)),
          this.clock.now(),
          left.map((entry) => entry.token?.hash.toString('hex') ?? null),
          left.map((entry) => entry.token?.expiresAt ?? null),
          left.map((entry) => entry.clientIp),
          this.webhookUrls,
        ]);
        const byNumber = new Map(rows.map((row) => [row.phone_number, row]));
        left = left.filter((entry) => {
          const row = byNumber.get(entry.phoneNumber);
          if (!row) return true;
          entry.resolve({
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
      for (const entry of left) entry.reject(error);
      return;
    }
    // Twenty draws in a row that all hit taken codes: the code space is nearly full.
    const error = new Error('could not allocate a unique invite code');
    for (const entry of left) entry.reject(error);
  }
}
