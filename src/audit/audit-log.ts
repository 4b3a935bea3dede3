import { type SQL, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Database, Db } from '../db/client.js';
import type { AuditActor, AuditType } from '../db/schema.js';
import { rowsOf } from '../db/sql-helpers.js';
import type { Clock } from '../lib/clock.js';
import { TurnBatch } from '../lib/turn-batch.js';

export type AuditRecord = {
  type: AuditType;
  actor: AuditActor;
  /** The signed-in user who acted (null for the CLI and for clients not signed in). */
  actorId?: number | null;
  /** The user the entry is about... */
  userId?: number | null;
  /** ...or their number, looked up in the same statement (null when nobody has it). */
  phoneNumber?: string;
  ip?: string | null;
  /** Never a one-time code or a token. */
  details?: Record<string, unknown>;
};

export type AuditEntry = {
  id: number;
  at: string;
  type: AuditType;
  actor: AuditActor;
  actor_id: number | null;
  user_id: number | null;
  ip: string | null;
  details: Record<string, unknown>;
};

export type AuditPage = {
  count: number;
  /** False when `count` stopped at COUNT_LIMIT: the log holds more than that. */
  count_exact: boolean;
  results: AuditEntry[];
  next_cursor: string | null;
};

export type AuditQuery = {
  userId?: number | undefined;
  type?: AuditType | undefined;
  /** Entries older than this id (from a cursor). */
  beforeId?: number | undefined;
  limit: number;
};

/**
 * Counting every entry of a log that grows with each sign-in would make each
 * page slower than the last; past this many the count says "at least".
 */
export const COUNT_LIMIT = 10_000;

type Row = {
  id: string | number;
  at: Date | string;
  type: AuditType;
  actor: AuditActor;
  actor_id: string | number | null;
  user_id: string | number | null;
  ip: string | null;
  details: Record<string, unknown> | string;
};

const nullableNumber = (value: string | number | null) => (value === null ? null : Number(value));

export function encodeAuditCursor(id: number): string {
  return Buffer.from(`a1:${id}`).toString('base64url');
}

export function decodeAuditCursor(cursor: string): number | null {
  const match = /^a1:(\d{1,18})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  const id = match ? Number(match[1]) : Number.NaN;
  return Number.isSafeInteger(id) ? id : null;
}

/**
 * The `code_sent` entries of one turn of the event loop, in one statement:
 * each request-code writes one, and one statement each made embedded sign-ins
 * 3x slower (567 against 1,724 sign-ins/s without the entry, `npm run bench --
 * --only signin --quick --backends embedded`, 2026-12-02). Each entry keeps
 * its own time and its user is looked up by number as `record` does (a
 * lateral lookup, src/db/plan-once.ts).
 */
const CODE_SENT_SQL = `
  insert into audit_log (at, type, actor, user_id, ip, details)
  select i.at, 'code_sent', 'anonymous', u.id, i.ip, i.details::jsonb
  from unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
    as i(phone_number, ip, details, at)
  left join lateral (
    select x.id from users x where x.phone_number = i.phone_number limit 1
  ) u on true`;

type PendingCodeSent = { phoneNumber: string; ip: string; details: string; at: Date };

/**
 * The audit log: who did what to whom, when and from where. The application
 * only ever appends to it. An entry that records a change is written in the
 * change's own transaction (pass it as `executor`), so the change and its
 * entry commit together or not at all. An entry that records something
 * already done elsewhere (a code sent, a code voided) is written with
 * `record`, which never fails its caller: the answer is already decided.
 */
export class AuditLog {
  /** The `code_sent` entries of a turn, written together (CODE_SENT_SQL). */
  private readonly codesSent = new TurnBatch<PendingCodeSent, undefined>((entries) =>
    this.writeCodesSent(entries),
  );

  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** Appends an entry, inside `executor`'s transaction when given. */
  async write(entry: AuditRecord, executor: Db = this.database.db): Promise<void> {
    const userId =
      entry.userId != null
        ? sql`${entry.userId}`
        : entry.phoneNumber !== undefined
          ? sql`(select id from users where phone_number = ${entry.phoneNumber})`
          : sql`null`;
    await executor.execute(sql`
      insert into audit_log (at, type, actor, actor_id, user_id, ip, details)
      values (${this.clock.now().toISOString()}, ${entry.type}, ${entry.actor},
        ${entry.actorId ?? null}, ${userId}, ${entry.ip ?? null},
        ${JSON.stringify(entry.details ?? {})}::jsonb)`);
  }

  /** Best effort: a failure (the database is down) is logged, not thrown. True when written. */
  async record(entry: AuditRecord): Promise<boolean> {
    try {
      await this.write(entry);
      return true;
    } catch (error) {
      this.logger.warn({ err: error, audit: entry.type }, 'audit entry not written');
      return false;
    }
  }

  /** A signed-in user's own action (a logout, an activation), in the change's transaction. */
  byUser(
    tx: Db,
    type: 'logout' | 'logout_all' | 'invite_activated',
    userId: number,
    ip: string,
    details: Record<string, unknown> = {},
  ): Promise<void> {
    return this.write({ type, actor: 'user', actorId: userId, userId, ip, details }, tx);
  }

  /**
   * A code sent to a number (best effort: it is on its way), or `withheld`:
   * issued to a blocked account and not sent. Written either way, so that the
   * answer to a blocked number takes no less time than any other.
   */
  codeSent(phoneNumber: string, ip: string, withheld = false): Promise<undefined> {
    const details = { phone_number: phoneNumber, ...(withheld ? { withheld: true } : {}) };
    return this.codesSent.add({
      phoneNumber,
      ip,
      details: JSON.stringify(details),
      at: this.clock.now(),
    });
  }

  /** Best effort, as `record`. */
  private async writeCodesSent(entries: PendingCodeSent[]): Promise<undefined[]> {
    try {
      await this.database.query('audit_code_sent', CODE_SENT_SQL, [
        entries.map((entry) => entry.phoneNumber),
        entries.map((entry) => entry.ip),
        entries.map((entry) => entry.details),
        entries.map((entry) => entry.at),
      ]);
    } catch (error) {
      this.logger.warn({ err: error, audit: 'code_sent' }, 'audit entries not written');
    }
    return [];
  }

  /** A code voided by wrong guesses (best effort: the guess is already answered). */
  codeVoided(phoneNumber: string, ip: string): Promise<boolean> {
    const details = { phone_number: phoneNumber, reason: 'code_voided' };
    return this.record({ type: 'sign_in_failed', actor: 'anonymous', phoneNumber, ip, details });
  }

  /** Entries newest first, filtered by user and type; pages never skip or repeat one. */
  async list(query: AuditQuery): Promise<AuditPage> {
    const conditions: SQL[] = [];
    if (query.userId !== undefined) conditions.push(sql`user_id = ${query.userId}`);
    if (query.type !== undefined) conditions.push(sql`type = ${query.type}`);
    const filter = conditions.length > 0 ? sql`where ${sql.join(conditions, sql` and `)}` : sql``;
    const before = query.beforeId !== undefined ? sql`id < ${query.beforeId}` : undefined;
    const pageFilter = before
      ? sql`where ${sql.join([...conditions, before], sql` and `)}`
      : filter;
    const db = this.database.db;
    const [rows, counted] = await Promise.all([
      db.execute(sql`
        select id, at, type, actor, actor_id, user_id, ip, details from audit_log
        ${pageFilter} order by id desc limit ${query.limit + 1}`),
      db.execute(sql`
        select count(*)::int as count from
          (select 1 from audit_log ${filter} limit ${COUNT_LIMIT + 1}) counted`),
    ]);
    const found = rowsOf<Row>(rows).map(toEntry);
    const page = found.slice(0, query.limit);
    const count = Number(rowsOf<{ count: number }>(counted)[0]?.count ?? 0);
    const last = page.at(-1);
    return {
      count: Math.min(count, COUNT_LIMIT),
      count_exact: count <= COUNT_LIMIT,
      results: page,
      next_cursor: found.length > query.limit && last ? encodeAuditCursor(last.id) : null,
    };
  }
}

function toEntry(row: Row): AuditEntry {
  return {
    id: Number(row.id),
    at: (row.at instanceof Date ? row.at : new Date(row.at)).toISOString(),
    type: row.type,
    actor: row.actor,
    actor_id: nullableNumber(row.actor_id),
    user_id: nullableNumber(row.user_id),
    ip: row.ip,
    details: typeof row.details === 'string' ? JSON.parse(row.details) : row.details,
  };
}
