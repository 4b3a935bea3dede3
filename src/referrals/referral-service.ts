import { sql } from 'drizzle-orm';
import type { AccountChanges, Announce } from '../accounts/account-changes.js';
import {
  type AuthenticatedUser,
  lookupHash,
  SESSION_COLUMNS,
  type SessionRow,
  sessionOf,
} from '../auth/session-service.js';
import type { Database, Db } from '../db/client.js';
import { rowsOf, textArray } from '../db/sql-helpers.js';
import type { FraudFlag, FraudSignals } from '../events/fraud-signals.js';
import type { Clock } from '../lib/clock.js';
import { JsonArray } from '../lib/json-array.js';
import { sqlState } from '../lib/pg-errors.js';
import { normalizeInviteCode } from './invite-code.js';

export type Referral = { phone_number: string; activated_at: string };

export type Profile = {
  id: number;
  phone_number: string;
  invite_code: string;
  activated_invite_code: string | null;
  /** The first 100, oldest first, as the database wrote them. */
  referrals: JsonArray<Referral>;
  referrals_count: number;
};

export type ReferralPage = {
  count: number;
  results: JsonArray<Referral>;
  next_cursor: string | null;
};

export type ActivationError =
  | 'invite_not_found'
  | 'invite_own_code'
  | 'invite_already_activated'
  | 'invite_cycle';

/** `flags`: the fraud signals of the activation, recorded with it (never a refusal). */
export type ActivationResult =
  | { ok: true; flags: FraudFlag[] }
  | { ok: false; error: ActivationError };

/** What `alongside` learns of a successful activation, in its transaction. */
export type Activation = { referrerId: number; flags: FraudFlag[] };

export const PROFILE_REFERRALS_LIMIT = 100;
const MAX_ACTIVATION_TRIES = 20;
// Deadlock and serialization failures: the transaction is simply run again.
const RETRYABLE = new Set(['40P01', '40001']);

type Row = Record<string, unknown>;

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

/** What the profile routes need (src/cache/cached-referrals.ts wraps it). */
export interface Referrals {
  /** The profile, with the first referrals embedded, oldest first; null for no such user. */
  getProfile(user: AuthenticatedUser): Promise<Profile | null>;
  /** A page of the user's referrals after position `afterSeq`, oldest first. */
  listReferrals(user: AuthenticatedUser, afterSeq: number, limit: number): Promise<ReferralPage>;
  /**
   * The profile of the user behind a live token, and that user; null when the
   * token is not live (the rule of Sessions.authenticate). The plain service
   * checks the token in the statement that reads: one round trip, not two.
   */
  getProfileOfToken(token: string): Promise<OfToken<Profile> | null>;
  /** As getProfileOfToken, for a page of the referrals. */
  listReferralsOfToken(
    token: string,
    afterSeq: number,
    limit: number,
  ): Promise<OfToken<ReferralPage> | null>;
  activate(
    userId: number,
    rawCode: string,
    alongside?: AlongsideActivation,
  ): Promise<ActivationResult>;
}

/** A read made with a token, and the user the token is live for. */
export type OfToken<T> = { user: AuthenticatedUser; value: T };

/** Run in the transaction of a successful activation (the audit entry): both commit or neither. */
export type AlongsideActivation = (tx: Db, activation: Activation) => Promise<void>;

/**
 * The JSON text of the referrals `x` (as_referral, referral_seq), oldest
 * first: each referral's JSON is kept with it (`users.as_referral`,
 * activated_at as `toISOString` writes it). `filter` is an SQL condition on `x`.
 */
function referralsText(filter = 'true'): string {
  return `'[' || coalesce(string_agg(x.as_referral, ','
      order by x.referral_seq) filter (where ${filter}), '') || ']'`;
}

/**
 * The JSON text of the first referrals of user `userId` (an SQL expression),
 * read from the referrals themselves: what `users.first_referrals` holds once
 * they are all there.
 */
export function firstReferralsText(userId: string): string {
  return `(select ${referralsText()} from (
      select as_referral, referral_seq from users
      where referrer_id = ${userId} order by referral_seq limit ${PROFILE_REFERRALS_LIMIT}
    ) x)`;
}

/**
 * The columns of the profile of `u` (with `r`, its referrer): the first
 * referrals come from `first_referrals` once written, so a profile of 100 or
 * more referrals costs PostgreSQL no work per referral.
 */
const PROFILE_COLUMNS = `u.id, u.phone_number, u.invite_code,
  r.invite_code as activated_invite_code, u.referrals_count,
  coalesce(u.first_referrals, ${firstReferralsText('u.id')}) as referrals`;

type ProfileRow = {
  id: string | number;
  phone_number: string;
  invite_code: string;
  activated_invite_code: string | null;
  referrals_count: number;
  referrals: string;
};

function profileOf(row: ProfileRow): Profile {
  return {
    id: Number(row.id),
    phone_number: row.phone_number,
    invite_code: row.invite_code,
    activated_invite_code: row.activated_invite_code,
    referrals: new JsonArray(row.referrals),
    referrals_count: Number(row.referrals_count),
  };
}

/**
 * A page of user `userId`'s referrals after position `afterSeq`, `limit` of
 * them (SQL expressions), as a subquery `pg` of one row: the total, the page's
 * JSON text, the position of its last referral and whether more follow (one
 * more is read to know).
 */
function pageSubquery(userId: string, afterSeq: string, limit: string): string {
  return `(
    select u.referrals_count as count, coalesce(p.results, '[]') as results,
      p.last_seq, coalesce(p.more, false) as more
    from users u left join lateral (
      select ${referralsText(`x.n <= ${limit}`)} as results,
        max(x.referral_seq) filter (where x.n <= ${limit}) as last_seq,
        count(*) > ${limit} as more
      from (
        select as_referral, referral_seq,
          row_number() over (order by referral_seq) as n
        from users
        where referrer_id = u.id and referral_seq > ${afterSeq}
        order by referral_seq limit ${limit} + 1
      ) x
    ) p on true
    where u.id = ${userId}
  ) pg`;
}

type PageRow = {
  count: number;
  results: string;
  last_seq: number | null;
  more: boolean;
};

function pageOf(row: PageRow | undefined): ReferralPage {
  if (row === undefined) return { count: 0, results: JsonArray.empty, next_cursor: null };
  return {
    count: Number(row.count),
    results: new JsonArray(row.results),
    next_cursor: row.more && row.last_seq !== null ? encodeCursor(Number(row.last_seq)) : null,
  };
}

/** The profile and its first referrals, in one round trip. */
const PROFILE_SQL = `
  select ${PROFILE_COLUMNS}
  from users u left join users r on r.id = u.referrer_id
  where u.id = $1`;

/**
 * The profiles of the users behind live tokens, and those users: each row
 * with its token's position `i` (from 1) among the hex SHA-256 hashes `$1`; a
 * token not live has no row. One token or a turn's worth (BatchedReferrals).
 */
const PROFILES_OF_TOKENS_SQL = `
  select t.i, ${SESSION_COLUMNS}, ${PROFILE_COLUMNS}
  from unnest($1::text[]) with ordinality as t(token_hash, i)
  cross join lateral live_token_user(decode(t.token_hash, 'hex'), $2) s
  join users u on u.id = s.id left join users r on r.id = u.referrer_id`;

/** One page of referrals: of user $1, after position $2, $3 of them. */
export const REFERRALS_PAGE_SQL = `select pg.* from ${pageSubquery('$1', '$2', '$3')}`;

/**
 * The same, of the users behind live tokens, and those users: each row with
 * its ask's position `i` (from 1) among the hex SHA-256 hashes `$1`, the
 * positions `$3` and the page sizes `$4`; a token not live has no row. One
 * page or a turn's worth (BatchedReferrals).
 */
const REFERRALS_PAGES_OF_TOKENS_SQL = `
  select t.i, ${SESSION_COLUMNS}, pg.*
  from unnest($1::text[], $3::int[], $4::int[]) with ordinality
    as t(token_hash, after_seq, page_limit, i)
  cross join lateral live_token_user(decode(t.token_hash, 'hex'), $2) s
  cross join lateral ${pageSubquery('s.id', 't.after_seq', 't.page_limit')}`;

/** A page asked for with a token: after position `afterSeq`, `limit` referrals. */
export type PageAsk = { token: string; afterSeq: number; limit: number };

/** Invite codes and referrals, read and written in the database alone. */
export class ReferralService implements Referrals {
  constructor(
    private readonly database: Database,
    private readonly changes: AccountChanges,
    private readonly clock: Clock,
    private readonly fraud: FraudSignals,
  ) {}

  async getProfile(user: AuthenticatedUser): Promise<Profile | null> {
    const [row] = await this.database.query<ProfileRow>('profile', PROFILE_SQL, [user.id]);
    return row ? profileOf(row) : null;
  }

  async getProfileOfToken(token: string): Promise<OfToken<Profile> | null> {
    const [answer] = await this.getProfilesOfTokens([token]);
    return answer ?? null;
  }

  /**
   * As getProfileOfToken, for several tokens in one statement (src/referrals/
   * batched-referrals.ts): one answer per token, at its index.
   */
  async getProfilesOfTokens(tokens: readonly string[]): Promise<(OfToken<Profile> | null)[]> {
    return this.readOfTokens(
      tokens,
      (token) => token,
      'profiles_of_tokens',
      PROFILES_OF_TOKENS_SQL,
      () => [],
      (row: SessionRow & ProfileRow) => profileOf(row),
    );
  }

  /**
   * Reads made with tokens, in one statement `name`: its parameters are the
   * hex hashes of the well-formed tokens, the time, then `params` of those
   * asks; each row names its ask by its position `i` (from 1). One answer per
   * ask, at its index: null when the token is not live.
   */
  private async readOfTokens<Ask, Row extends SessionRow, T>(
    asks: readonly Ask[],
    tokenOf: (ask: Ask) => string,
    name: string,
    text: string,
    params: (asked: Ask[]) => unknown[],
    answerOf: (row: Row) => T,
  ): Promise<(OfToken<T> | null)[]> {
    const answers: (OfToken<T> | null)[] = asks.map(() => null);
    const positions: number[] = [];
    const hashes: string[] = [];
    asks.forEach((ask, index) => {
      const hash = lookupHash(tokenOf(ask));
      if (hash === null) return;
      positions.push(index);
      hashes.push(hash.toString('hex'));
    });
    if (hashes.length === 0) return answers;
    const asked = positions.map((index) => asks[index] as Ask);
    const rows = await this.database.query<Row & { i: string | number }>(name, text, [
      hashes,
      this.clock.now(),
      ...params(asked),
    ]);
    for (const row of rows) {
      const index = positions[Number(row.i) - 1];
      if (index !== undefined) answers[index] = { user: sessionOf(row).user, value: answerOf(row) };
    }
    return answers;
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
    const [row] = await this.database.query<PageRow>('referrals_page', REFERRALS_PAGE_SQL, [
      user.id,
      afterSeq,
      limit,
    ]);
    return pageOf(row);
  }

  async listReferralsOfToken(
    token: string,
    afterSeq: number,
    limit: number,
  ): Promise<OfToken<ReferralPage> | null> {
    const [answer] = await this.listReferralsOfTokens([{ token, afterSeq, limit }]);
    return answer ?? null;
  }

  /**
   * As listReferralsOfToken, for several pages in one statement (src/referrals/
   * batched-referrals.ts): one answer per ask, at its index.
   */
  async listReferralsOfTokens(asks: readonly PageAsk[]): Promise<(OfToken<ReferralPage> | null)[]> {
    return this.readOfTokens(
      asks,
      (ask) => ask.token,
      'referrals_pages_of_tokens',
      REFERRALS_PAGES_OF_TOKENS_SQL,
      (asked) => [asked.map((ask) => ask.afterSeq), asked.map((ask) => ask.limit)],
      (row: SessionRow & PageRow) => pageOf(row),
    );
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
   * AccountChanges before the commit. The activation's fraud flags are
   * computed while the owner's row is locked and stored with it.
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
    const owners = rowsOf<Row>(
      await tx.execute(sql`select id from users where invite_code = ${code}`),
    );
    if (!owners[0]) return { ok: false, error: 'invite_not_found' };
    const ownerId = Number(owners[0].id);
    if (ownerId === userId) return { ok: false, error: 'invite_own_code' };

    const self = rowsOf<Row>(
      await tx.execute(sql`select referrer_id from users where id = ${userId}`),
    );
    if (!self[0]) return { ok: false, error: 'invite_not_found' };
    if (self[0].referrer_id !== null) return { ok: false, error: 'invite_already_activated' };

    // The chain of referrers from the owner up to its root.
    const chain = rowsOf<Row>(
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

    const locked = rowsOf<Row>(
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
    const counted = rowsOf<Row>(
      await tx.execute(sql`
        update users set referrals_count = referrals_count + 1 where id = ${ownerId}
        returning referrals_count`),
    );
    const seq = Number(counted[0]?.referrals_count);
    const at = this.clock.now();
    const flags = await this.fraud.flagActivation(tx, {
      refereeId: userId,
      referrerId: ownerId,
      at,
    });
    await tx.execute(sql`
      update users set referrer_id = ${ownerId}, activated_at = ${at.toISOString()},
        referral_seq = ${seq}, fraud_flags = ${textArray(flags)}
      where id = ${userId}`);
    if (seq >= PROFILE_REFERRALS_LIMIT) {
      // The profile's first referrals are all there now, and never change: kept
      // with the owner, whose row is locked (also written later, if missing).
      await tx.execute(sql`
        update users u set first_referrals = ${sql.raw(firstReferralsText('u.id'))}
        where u.id = ${ownerId} and u.first_referrals is null`);
    }
    await alongside?.(tx, { referrerId: ownerId, flags });
    return { ok: true, flags };
  }
}
