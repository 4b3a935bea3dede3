import { sql } from 'drizzle-orm';
import type { AccountChanges, Announce } from '../accounts/account-changes.js';
import type { AuthenticatedUser } from '../auth/session-service.js';
import type { Database, Db } from '../db/client.js';
import type { Clock } from '../lib/clock.js';
import { sqlState } from '../lib/pg-errors.js';
import { normalizeInviteCode } from './invite-code.js';

export type Referral = { phone_number: string; activated_at: string };

export type Profile = {
  id: number;
  phone_number: string;
  invite_code: string;
  activated_invite_code: string | null;
  referrals: Referral[];
  referrals_count: number;
};

export type ReferralPage = { count: number; results: Referral[]; next_cursor: string | null };

export type ActivationError =
  | 'invite_not_found'
  | 'invite_own_code'
  | 'invite_already_activated'
  | 'invite_cycle';

export type ActivationResult = { ok: true } | { ok: false; error: ActivationError };

export const PROFILE_REFERRALS_LIMIT = 100;
const MAX_ACTIVATION_TRIES = 20;
// Deadlock and serialization failures: the transaction is simply run again.
const RETRYABLE = new Set(['40P01', '40001']);

type Row = Record<string, unknown>;

function rowsOf(result: unknown): Row[] {
  return (result as { rows: Row[] }).rows;
}

export function encodeCursor(seq: number): string {
  return Buffer.from(`r1:${seq}`).toString('base64url');
}

const MAX_SEQ = 2_147_483_647;

export function decodeCursor(cursor: string): number | null {
  const match = /^r1:(\d{1,10})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  const seq = match ? Number(match[1]) : Number.NaN;
  // referral_seq is a PostgreSQL integer: a forged larger cursor must be a 400, not a query error.
  return seq <= MAX_SEQ ? seq : null;
}

type ProfileRow = {
  id: string | number;
  phone_number: string;
  invite_code: string;
  activated_invite_code: string | null;
  referrals_count: number;
  referral_phone: string | null;
  referral_activated_at: Date | string | null;
};

type PageRow = {
  phone_number: string | null;
  activated_at: Date | string | null;
  referral_seq: number | null;
  referrals_count: number;
};

function toIso(value: Date | string | null): string {
  return (value instanceof Date ? value : new Date(value ?? 0)).toISOString();
}

/** What the profile routes need (src/cache/cached-referrals.ts wraps it). */
export interface Referrals {
  /** The profile, with the first referrals embedded, oldest first; null for no such user. */
  getProfile(user: AuthenticatedUser): Promise<Profile | null>;
  /** A page of the user's referrals after position `afterSeq`, oldest first. */
  listReferrals(user: AuthenticatedUser, afterSeq: number, limit: number): Promise<ReferralPage>;
  activate(
    userId: number,
    rawCode: string,
    alongside?: AlongsideActivation,
  ): Promise<ActivationResult>;
}

/** Run in the transaction of a successful activation (the audit entry): both commit or neither. */
export type AlongsideActivation = (tx: Db, activation: { referrerId: number }) => Promise<void>;

/** The profile and its first referrals, in one round trip. */
const PROFILE_SQL = `
  select u.id, u.phone_number, u.invite_code, r.invite_code as activated_invite_code,
    u.referrals_count, x.phone_number as referral_phone, x.activated_at as referral_activated_at
  from users u
  left join users r on r.id = u.referrer_id
  left join lateral (
    select phone_number, activated_at, referral_seq from users
    where referrer_id = u.id order by referral_seq limit ${PROFILE_REFERRALS_LIMIT}
  ) x on true
  where u.id = $1
  order by x.referral_seq`;

/** One page of referrals (one more row than asked, to know whether another follows). */
const REFERRALS_PAGE_SQL = `
  select x.phone_number, x.activated_at, x.referral_seq, u.referrals_count
  from users u left join lateral (
    select phone_number, activated_at, referral_seq from users
    where referrer_id = u.id and referral_seq > $2
    order by referral_seq limit $3
  ) x on true
  where u.id = $1
  order by x.referral_seq`;

/** Invite codes and referrals, read and written in the database alone. */
export class ReferralService implements Referrals {
  constructor(
    private readonly database: Database,
    private readonly changes: AccountChanges,
    private readonly clock: Clock,
  ) {}

  async getProfile(user: AuthenticatedUser): Promise<Profile | null> {
    const rows = await this.database.query<ProfileRow>('profile', PROFILE_SQL, [user.id]);
    const first = rows[0];
    if (!first) return null;
    return {
      id: Number(first.id),
      phone_number: first.phone_number,
      invite_code: first.invite_code,
      activated_invite_code: first.activated_invite_code ?? null,
      referrals: rows
        .filter((r) => r.referral_phone !== null)
        .map((r) => ({
          phone_number: r.referral_phone as string,
          activated_at: toIso(r.referral_activated_at),
        })),
      referrals_count: Number(first.referrals_count),
    };
  }

  /**
   * The cursor is the position among the referrer's referrals, which only
   * grows in commit order (see `activate`), so no page ever skips or repeats
   * a referral.
   */
  async listReferrals(
    user: AuthenticatedUser,
    afterSeq: number,
    limit: number,
  ): Promise<ReferralPage> {
    const rows = await this.database.query<PageRow>('referrals_page', REFERRALS_PAGE_SQL, [
      user.id,
      afterSeq,
      limit + 1,
    ]);
    const count = Number(rows[0]?.referrals_count ?? 0);
    const found = rows.filter((r) => r.referral_seq !== null);
    const page = found.slice(0, limit);
    const last = page.at(-1);
    return {
      count,
      results: page.map((r) => ({
        phone_number: r.phone_number as string,
        activated_at: toIso(r.activated_at),
      })),
      next_cursor: found.length > limit && last ? encodeCursor(Number(last.referral_seq)) : null,
    };
  }

  /**
   * Activates an invite code for `userId`: at most once, never the user's own,
   * never closing a cycle in the referral graph.
   *
   * Why this is race-free: a user's referrer is set once and never changes, so
   * in the chain of referrers above the code's owner only the top (the root)
   * can change. A cycle through the new edge user -> owner exists exactly when
   * the user is in that chain. The transaction locks the user, the root and the
   * owner (in id order, so two transactions cannot deadlock on them), then
   * re-reads: if the root gained a referrer meanwhile, the chain is walked again.
   * While the locks are held, neither the user nor the root can be given a
   * referrer by anyone else, so the chain checked is the chain committed.
   *
   * The user's profile and the owner's change: both are announced through
   * AccountChanges before the commit.
   */
  async activate(
    userId: number,
    rawCode: string,
    alongside?: AlongsideActivation,
  ): Promise<ActivationResult> {
    const code = normalizeInviteCode(rawCode);
    if (code === null) return { ok: false, error: 'invite_not_found' };
    return this.changes.announcing(async (announce) => {
      for (let attempt = 0; attempt < MAX_ACTIVATION_TRIES; attempt++) {
        try {
          const outcome = await this.changes.open((tx) =>
            this.tryActivate(tx, userId, code, announce, alongside),
          );
          if (outcome !== 'retry') return outcome;
        } catch (error) {
          if (!RETRYABLE.has(sqlState(error) ?? '')) throw error;
        }
      }
      throw new Error('invite activation kept conflicting; giving up');
    });
  }

  private async tryActivate(
    tx: Db,
    userId: number,
    code: string,
    announce: Announce,
    alongside?: AlongsideActivation,
  ): Promise<ActivationResult | 'retry'> {
    const owners = rowsOf(await tx.execute(sql`select id from users where invite_code = ${code}`));
    if (!owners[0]) return { ok: false, error: 'invite_not_found' };
    const ownerId = Number(owners[0].id);
    if (ownerId === userId) return { ok: false, error: 'invite_own_code' };

    const self = rowsOf(await tx.execute(sql`select referrer_id from users where id = ${userId}`));
    if (!self[0]) return { ok: false, error: 'invite_not_found' };
    if (self[0].referrer_id !== null) return { ok: false, error: 'invite_already_activated' };

    // The chain of referrers from the owner up to its root.
    const chain = rowsOf(
      await tx.execute(sql`
        with recursive chain(id, referrer_id) as (
          select id, referrer_id from users where id = ${ownerId}
          union all
          select u.id, u.referrer_id from users u join chain c on u.id = c.referrer_id
        )
        select id, referrer_id from chain`),
    );
    if (chain.some((r) => Number(r.id) === userId)) return { ok: false, error: 'invite_cycle' };
    const rootId = Number(chain.find((r) => r.referrer_id === null)?.id ?? ownerId);

    const locked = rowsOf(
      await tx.execute(sql`
        select id, referrer_id from users
        where id in (${userId}, ${rootId}, ${ownerId}) order by id for update`),
    );
    const lockedUser = locked.find((r) => Number(r.id) === userId);
    const lockedRoot = locked.find((r) => Number(r.id) === rootId);
    if (!lockedUser || !lockedRoot) return { ok: false, error: 'invite_not_found' };
    if (lockedUser.referrer_id !== null) return { ok: false, error: 'invite_already_activated' };
    if (lockedRoot.referrer_id !== null) return 'retry';
    await announce(userId);
    await announce(ownerId);

    // The owner's row is locked, so positions are handed out one at a time, in commit order.
    const counted = rowsOf(
      await tx.execute(sql`
        update users set referrals_count = referrals_count + 1 where id = ${ownerId}
        returning referrals_count`),
    );
    const seq = Number(counted[0]?.referrals_count);
    await tx.execute(sql`
      update users set referrer_id = ${ownerId}, activated_at = ${this.clock.now().toISOString()},
        referral_seq = ${seq}
      where id = ${userId}`);
    await alongside?.(tx, { referrerId: ownerId });
    return { ok: true };
  }
}
