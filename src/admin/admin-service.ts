import { hostname, userInfo } from 'node:os';
import { sql } from 'drizzle-orm';
import type { AccountChanges } from '../accounts/account-changes.js';
import type { AuditLog, AuditRecord } from '../audit/audit-log.js';
import type { PhoneResult } from '../auth/phone.js';
import type { Sessions } from '../auth/session-service.js';
import type { Users } from '../auth/user-service.js';
import type { Database, Db } from '../db/client.js';
import { rowsOf } from '../db/sql-helpers.js';
import { type FlagDetail, flagDetails } from '../events/fraud-signals.js';
import type { Clock } from '../lib/clock.js';
import { SharedRun } from '../lib/shared-run.js';
import { encodeCursor } from '../referrals/referral-service.js';
import type { RecentCountsOfDay } from './recent-counts.js';

/** A user as the admin lists show them (SPEC 5). */
export type AdminUser = {
  id: number;
  phone_number: string;
  invite_code: string;
  joined_at: string;
  is_staff: boolean;
  is_blocked: boolean;
  referrals_count: number;
  referrer_id: number | null;
  /** Fraud flags on the user's activation (SPEC 6; 0: none, or not activated). */
  flags_count: number;
};

export type AdminReferral = { id: number; phone_number: string; activated_at: string };

export type AdminReferralPage = {
  count: number;
  results: AdminReferral[];
  next_cursor: string | null;
};

export type AdminUserDetail = AdminUser & {
  referrer: AdminUser | null;
  referrals: AdminReferralPage;
  active_tokens: number;
  flags: FlagDetail[];
};

export type UserPage = { count: number; results: AdminUser[]; next_cursor: string | null };

export type UserSort = 'joined_at' | '-joined_at';

/** A position in a user list: the join time (microseconds, as stored) and id of the last user shown. */
export type UserCursor = { sort: UserSort; joinedAtMicros: string; id: number };

export type Stats = {
  users_total: number;
  users_last_24h: number;
  activations_total: number;
  activations_last_24h: number;
  /** Successful sign-ins, from the audit log. */
  sign_ins_last_24h: number;
  top_referrers: { id: number; phone_number: string; referrals_count: number }[];
};

/** Who performs an admin action: a staff member through the API, or the command line. */
export type AdminActor = { kind: 'user'; userId: number; ip: string } | { kind: 'cli' };

/** What a search term can match; each present part is one indexed condition. */
export type SearchTerms = { phoneNumber?: string; inviteCode?: string; lastDigits?: string };

export type AccountChange = { user: AdminUser; revoked: number };

/** Fewer last digits would match a large share of all users. */
export const MIN_LAST_DIGITS = 4;
export const REFERRALS_FIRST_PAGE = 100;
const TOP_REFERRERS = 10;

type UserRow = {
  id: string | number;
  phone_number: string;
  invite_code: string;
  joined_at: string;
  joined_at_us: string | number | bigint;
  is_staff: boolean;
  is_blocked: boolean;
  referrals_count: number;
  referrer_id: string | number | null;
  flags_count: number | string;
};

// joined_at is written by PostgreSQL as toISOString would (milliseconds, truncated, UTC):
// parsing each row's timestamp into a Date was 5% of the service's CPU under the
// last-digits search (100 users a page).
const USER_COLUMNS_TEXT = `id, phone_number, invite_code,
  to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as joined_at,
  (extract(epoch from created_at) * 1000000)::bigint as joined_at_us,
  is_staff, is_blocked, referrals_count, referrer_id,
  coalesce(cardinality(fraud_flags), 0) as flags_count`;
/** The stored columns USER_COLUMNS_TEXT is made from, with the page's order. */
const USER_SOURCE_COLUMNS = `id, created_at, phone_number, invite_code,
  is_staff, is_blocked, referrals_count, referrer_id, fraud_flags`;
const USER_COLUMNS = sql.raw(USER_COLUMNS_TEXT);

function toIso(value: Date | string): string {
  return (value instanceof Date ? value : new Date(value)).toISOString();
}

function toUser(row: UserRow): AdminUser {
  return {
    id: Number(row.id),
    phone_number: row.phone_number,
    invite_code: row.invite_code,
    joined_at: row.joined_at,
    is_staff: row.is_staff,
    is_blocked: row.is_blocked,
    referrals_count: Number(row.referrals_count),
    referrer_id: row.referrer_id === null ? null : Number(row.referrer_id),
    flags_count: Number(row.flags_count),
  };
}

export function encodeUserCursor(cursor: UserCursor): string {
  const direction = cursor.sort === 'joined_at' ? 'a' : 'd';
  return Buffer.from(`u1:${direction}:${cursor.joinedAtMicros}:${cursor.id}`).toString('base64url');
}

/** The cursor's position, or null when it is not one this API returned for `sort`. */
export function decodeUserCursor(cursor: string, sort: UserSort): UserCursor | null {
  const match = /^u1:([ad]):(-?\d{1,18}):(\d{1,18})$/.exec(
    Buffer.from(cursor, 'base64url').toString('utf8'),
  );
  if (!match) return null;
  const [, direction, joinedAtMicros = '', id = ''] = match;
  if ((direction === 'a') !== (sort === 'joined_at')) return null;
  const userId = Number(id);
  return Number.isSafeInteger(userId) ? { sort, joinedAtMicros, id: userId } : null;
}

/**
 * What a search for `q` looks for: the number it denotes however written
 * (`8 (999) 123-45-67`), the last digits of numbers, an invite code in any
 * case. null: digits too few to search by.
 */
export function searchTerms(
  q: string,
  normalizePhone: (input: string) => PhoneResult,
): SearchTerms | null {
  const text = q.trim();
  const terms: SearchTerms = {};
  const phone = normalizePhone(text);
  if (phone.ok) terms.phoneNumber = phone.phoneNumber;
  if (/^[A-Za-z0-9]{6}$/.test(text)) terms.inviteCode = text.toUpperCase();
  const digits = text.replace(/[\s()+\-.]/g, '');
  if (/^\d+$/.test(digits)) {
    if (digits.length >= MIN_LAST_DIGITS) terms.lastDigits = digits;
    else if (!terms.inviteCode) return null;
  }
  return terms;
}

/**
 * What staff can see and do. Every change to a user that a token check reads
 * (blocked, staff, tokens) goes through AccountChanges, which announces it to
 * every instance's cache before answering, and is written to the audit log in
 * the same transaction.
 */
export class AdminService {
  private readonly db: Db;
  private readonly sharedStats = new SharedRun(() => this.readStats());

  constructor(
    private readonly database: Database,
    private readonly changes: AccountChanges,
    private readonly clock: Clock,
    private readonly sessions: Sessions,
    private readonly users: Users,
    private readonly audit: AuditLog,
    private readonly recent: RecentCountsOfDay,
  ) {
    this.db = database.db;
  }

  /**
   * Users matching `terms` (all users when absent), by join time, a page
   * after `after`, and how many match: one prepared statement. Each search
   * condition is an index lookup, and the few matches are sorted; without a
   * search the page walks the (created_at, id) index from the cursor and the
   * total of all users comes from user_totals, not a count(*). Either way the
   * position is (join time, id), so pages never skip or repeat a user.
   */
  async searchUsers(options: {
    terms: SearchTerms | undefined;
    sort: UserSort;
    after: UserCursor | null;
    limit: number;
  }): Promise<UserPage> {
    const { terms, sort, after, limit } = options;
    const params: unknown[] = [];
    const param = (value: unknown) => `$${params.push(value)}`;
    const matches: string[] = [];
    if (terms?.phoneNumber) matches.push(`phone_number = ${param(terms.phoneNumber)}`);
    if (terms?.inviteCode) matches.push(`invite_code = ${param(terms.inviteCode)}`);
    if (terms?.lastDigits) {
      // The numbers whose reverse starts with the reversed digits, as a range
      // of users_phone_reversed_idx.
      const reversed = [...terms.lastDigits].reverse().join('');
      const next = `${reversed.slice(0, -1)}${String.fromCharCode(reversed.charCodeAt(reversed.length - 1) + 1)}`;
      matches.push(
        `(reverse(phone_number) ~>=~ ${param(reversed)} and reverse(phone_number) ~<~ ${param(next)})`,
      );
    }
    if (terms && matches.length === 0) return { count: 0, results: [], next_cursor: null };
    const ascending = sort === 'joined_at';
    const order = ascending ? 'created_at, id' : 'created_at desc, id desc';
    const position = after
      ? `where (created_at, id) ${ascending ? '>' : '<'} (timestamptz 'epoch' + ${param(after.joinedAtMicros)}::bigint * interval '1 microsecond', ${param(after.id)}::bigint)`
      : '';
    const page = `order by ${order} limit ${param(limit + 1)}`;
    // The matches first, then their order: left to itself the planner may
    // misjudge how many numbers end in some digits and walk the whole
    // join-date index instead (300 ms at a million users, against 1 ms). The
    // matches are counted and ordered by (join time, id) alone, which the
    // last-digits index holds (migration 0009); only the page's users are
    // read from the table and formatted (bench/README.md).
    const text = terms
      ? `with matched as materialized (
           select created_at, id from users where ${matches.join(' or ')})
         select c.count, ${USER_COLUMNS_TEXT} from (select count(*) as count from matched) c
         left join lateral (select id as page_id from matched ${position} ${page}) p on true
         left join users u on u.id = p.page_id
         order by ${order}`
      : `select c.count, ${USER_COLUMNS_TEXT}
         from (select coalesce(sum(users), 0) as count from user_totals) c
         left join lateral (select ${USER_SOURCE_COLUMNS} from users ${position} ${page}) p on true
         order by ${order}`;
    const shape = [
      terms?.phoneNumber ? 'p' : '',
      terms?.inviteCode ? 'c' : '',
      terms?.lastDigits ? 'd' : '',
      ascending ? 'a' : 'z',
      after ? 'k' : '',
    ].join('');
    const rows = await this.database.query<UserRow & { count: string | number }>(
      `admin_search_${shape}`,
      text,
      params,
    );
    const found = rows.filter((row) => row.id !== null);
    const shown = found.slice(0, limit);
    const last = shown.at(-1);
    return {
      count: Number(rows[0]?.count ?? 0),
      results: shown.map(toUser),
      next_cursor:
        found.length > limit && last
          ? encodeUserCursor({
              sort,
              joinedAtMicros: String(last.joined_at_us),
              id: Number(last.id),
            })
          : null,
    };
  }

  async findUser(userId: number): Promise<AdminUser | null> {
    const rows = rowsOf<UserRow>(
      await this.db.execute(sql`select ${USER_COLUMNS} from users where id = ${userId}`),
    );
    return rows[0] ? toUser(rows[0]) : null;
  }

  async findUserByPhone(phoneNumber: string): Promise<AdminUser | null> {
    const rows = rowsOf<UserRow>(
      await this.db.execute(
        sql`select ${USER_COLUMNS} from users where phone_number = ${phoneNumber}`,
      ),
    );
    return rows[0] ? toUser(rows[0]) : null;
  }

  /** One user with their referrer, first referrals, live tokens and flags. */
  async getUser(userId: number): Promise<AdminUserDetail | null> {
    const user = await this.findUser(userId);
    if (user === null) return null;
    const [referrer, referrals, tokens, flags] = await Promise.all([
      user.referrer_id === null ? null : this.findUser(user.referrer_id),
      this.listReferrals(userId, 0, REFERRALS_FIRST_PAGE),
      this.db.execute(sql`
        select count(*)::int as count from api_tokens
        where user_id = ${userId}
          and (expires_at is null or expires_at > ${this.clock.now().toISOString()})`),
      flagDetails(this.db, userId),
    ]);
    return {
      ...user,
      referrer,
      referrals: referrals ?? { count: 0, results: [], next_cursor: null },
      active_tokens: Number(rowsOf<{ count: number }>(tokens)[0]?.count ?? 0),
      flags,
    };
  }

  /**
   * A user's referrals, oldest first, after position `afterSeq`: the same
   * order and cursors as the profile's referrals page, with each one's id.
   */
  async listReferrals(
    userId: number,
    afterSeq: number,
    limit: number,
  ): Promise<AdminReferralPage | null> {
    const rows = rowsOf<{
      referrals_count: number;
      id: string | number | null;
      phone_number: string | null;
      activated_at: Date | string | null;
      referral_seq: number | null;
    }>(
      await this.db.execute(sql`
        select u.referrals_count, x.id, x.phone_number, x.activated_at, x.referral_seq
        from users u left join lateral (
          select id, phone_number, activated_at, referral_seq from users
          where referrer_id = u.id and referral_seq > ${afterSeq}
          order by referral_seq limit ${limit + 1}
        ) x on true
        where u.id = ${userId}
        order by x.referral_seq`),
    );
    if (rows.length === 0) return null;
    const found = rows.filter((row) => row.referral_seq !== null);
    const page = found.slice(0, limit);
    const last = page.at(-1);
    return {
      count: Number(rows[0]?.referrals_count ?? 0),
      results: page.map((row) => ({
        id: Number(row.id),
        phone_number: row.phone_number as string,
        activated_at: toIso(row.activated_at as Date | string),
      })),
      next_cursor: found.length > limit && last ? encodeCursor(Number(last.referral_seq)) : null,
    };
  }

  /**
   * Blocks the user and revokes all their tokens: every instance refuses
   * them from the next request on, and sign-in is refused.
   */
  block(userId: number, actor: AdminActor): Promise<AccountChange | null> {
    return this.revokeWith(userId, actor, 'admin_block', (tx) =>
      tx.execute(sql`update users set is_blocked = true where id = ${userId}`),
    );
  }

  /**
   * Lets the user sign in again. Their tokens stay revoked: any token still
   * stored (one issued by a sign-in that raced the block) is revoked too.
   */
  unblock(userId: number, actor: AdminActor): Promise<AccountChange | null> {
    return this.revokeWith(userId, actor, 'admin_unblock', (tx) =>
      tx.execute(sql`update users set is_blocked = false where id = ${userId}`),
    );
  }

  /** Signs the user out everywhere. */
  revokeTokens(userId: number, actor: AdminActor): Promise<AccountChange | null> {
    return this.revokeWith(userId, actor, 'admin_revoke_tokens');
  }

  private async revokeWith(
    userId: number,
    actor: AdminActor,
    type: 'admin_block' | 'admin_unblock' | 'admin_revoke_tokens',
    change?: (tx: Db) => Promise<unknown>,
  ): Promise<AccountChange | null> {
    if ((await this.findUser(userId)) === null) return null;
    const revoked = await this.sessions.revokeAll(userId, async (tx, count) => {
      await change?.(tx);
      await this.audit.write(auditOf(actor, type, userId, { revoked: count }), tx);
    });
    const user = await this.findUser(userId);
    return user && { user, revoked };
  }

  /** Grants or revokes staff; a revoked admin loses access on their next request. */
  async setStaff(
    userId: number,
    isStaff: boolean,
    actor: AdminActor,
    details: Record<string, unknown> = {},
  ): Promise<AdminUser | null> {
    if ((await this.findUser(userId)) === null) return null;
    await this.changes.transaction([userId], async (tx) => {
      await tx.execute(sql`update users set is_staff = ${isStaff} where id = ${userId}`);
      const type = isStaff ? 'admin_grant' : 'admin_revoke';
      await this.audit.write(auditOf(actor, type, userId, details), tx);
    });
    return this.findUser(userId);
  }

  /** Makes the number's user staff, creating the user (as a first sign-in would) if needed. */
  async createAdmin(
    phoneNumber: string,
    actor: AdminActor,
  ): Promise<{ user: AdminUser; created: boolean }> {
    const { user, isNew } = await this.users.findOrCreate(phoneNumber);
    const admin = await this.setStaff(user.id, true, actor, { created_user: isNew });
    if (admin === null) throw new Error(`user ${user.id} vanished while being made staff`);
    return { user: admin, created: isNew };
  }

  /**
   * Totals for the dashboard: sums of the user_totals shards, the top
   * referrers by their index, and the last 24 hours from RecentCountsOfDay,
   * which counts each settled minute once. No request scans users or counts a
   * day of rows. Requests that come while the figures are being read share
   * the next reading (SharedRun): a dashboard refreshed by many staff at once
   * costs the database one reading at a time, and no answer predates its
   * request.
   */
  stats(): Promise<Stats> {
    return this.sharedStats.get();
  }

  private async readStats(): Promise<Stats> {
    const [totals, recent] = await Promise.all([
      this.database.query<{
        users_total: string | number;
        activations_total: string | number;
        top: string;
      }>('admin_stats', STATS, [TOP_REFERRERS]),
      this.recent.lastDay(),
    ]);
    const row = totals[0];
    return {
      users_total: Number(row?.users_total ?? 0),
      users_last_24h: recent.users,
      activations_total: Number(row?.activations_total ?? 0),
      activations_last_24h: recent.activations,
      sign_ins_last_24h: recent.sign_ins,
      top_referrers: JSON.parse(row?.top ?? '[]'),
    };
  }
}

/** The all-time totals and the top referrers (users_top_referrers_idx), as one row. */
const STATS = `
  select
    (select coalesce(sum(users), 0) from user_totals) as users_total,
    (select coalesce(sum(activations), 0) from user_totals) as activations_total,
    (select coalesce(json_agg(t order by t.referrals_count desc, t.id), '[]')::text from (
      select id, phone_number, referrals_count from users
      where referrals_count > 0
      order by referrals_count desc, id limit $1) t) as top`;

/** The audit entry of an admin action; the CLI's names the account that ran it. */
function auditOf(
  actor: AdminActor,
  type: AuditRecord['type'],
  userId: number,
  details: Record<string, unknown>,
): AuditRecord {
  if (actor.kind === 'user') {
    return { type, actor: 'user', actorId: actor.userId, userId, ip: actor.ip, details };
  }
  return { type, actor: 'cli', userId, details: { ...details, ...cliOrigin() } };
}

function cliOrigin(): { os_user?: string; host: string } {
  try {
    return { os_user: userInfo().username, host: hostname() };
  } catch {
    // No passwd entry for this uid (some containers).
    return { host: hostname() };
  }
}
