import { hash as oneShotHash } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { AccountChanges } from '../accounts/account-changes.js';
import type { Database, Db } from '../db/client.js';
import { apiTokens } from '../db/schema.js';
import type { Clock } from '../lib/clock.js';
import type { Random } from '../lib/random.js';
import type { NewToken } from './user-service.js';

export type AuthenticatedUser = { id: number; phoneNumber: string; isStaff: boolean };

/** A live token's user, and when the token expires (null: never). */
export type Session = { user: AuthenticatedUser; expiresAtMs: number | null };

/** Run in the revoking transaction (the audit entry): both commit or neither. */
export type AlongsideRevoke = (tx: Db, revoked: number) => Promise<void>;

/** API tokens: what the auth hook, sign-in and logout need (src/cache/cached-sessions.ts wraps it). */
export interface Sessions {
  /** A new token, and what to store of it (see UserService.findOrCreate). */
  newToken(): { token: string; stored: NewToken };
  /** The session of a live token, or null for unknown, expired, revoked or blocked. */
  authenticate(token: string): Promise<Session | null>;
  /** Revokes one token of the user. */
  revoke(token: string, userId: number, alongside?: AlongsideRevoke): Promise<void>;
  /** Revokes every token of the user; answers how many. */
  revokeAll(userId: number, alongside?: AlongsideRevoke): Promise<number>;
}

const TOKEN_BYTES = 20; // 160 random bits, written as 40 hex characters like DRF tokens
const TOKEN_FORMAT = /^[0-9a-f]{40}$/;
const DAY_MS = 86_400_000;

export function hashToken(token: string): Buffer {
  // The one-shot hash: a third of the cost of createHash() on every request.
  return oneShotHash('sha256', token, 'buffer');
}

/**
 * The hash to look a token up by, or null for a string that cannot be a token
 * (no statement is run for it).
 */
export function lookupHash(token: string): Buffer | null {
  return TOKEN_FORMAT.test(token) ? hashToken(token) : null;
}

/**
 * The columns of a token check, read from `live_token_user(hash, now) s`: that
 * SQL function (drizzle/0005_live_token_user.sql) is the token rule of SPEC
 * section 4 (unexpired, not revoked, user not blocked), in one place, for this
 * service's own check and for the reads that check the token in the statement
 * that reads (ReferralService: the profile, a referrals page). It is one
 * index lookup per token however it is joined (drizzle/0010).
 */
export const SESSION_COLUMNS = `s.id as session_user_id, s.phone_number as session_phone_number,
  s.is_staff as session_is_staff,
  (extract(epoch from s.expires_at) * 1000)::float8 as session_expires_at_ms`;

export type SessionRow = {
  session_user_id: string | number;
  session_phone_number: string;
  session_is_staff: boolean;
  session_expires_at_ms: number | null;
};

export function sessionOf(row: SessionRow): Session {
  return {
    user: {
      id: Number(row.session_user_id),
      phoneNumber: row.session_phone_number,
      isStaff: row.session_is_staff,
    },
    expiresAtMs: row.session_expires_at_ms,
  };
}

/**
 * API tokens, read and written in the database alone. The database holds
 * only the SHA-256 of each token: looking one up by hash needs no
 * constant-time comparison, since an attacker who does not know a token
 * cannot steer its hash. Every sign-in issues a new token. Revoking goes
 * through AccountChanges, so that caches of other instances see it.
 */
export class SessionService implements Sessions {
  constructor(
    private readonly database: Database,
    private readonly changes: AccountChanges,
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly ttlDays: number,
  ) {}

  newToken(): { token: string; stored: NewToken } {
    const token = this.random.bytes(TOKEN_BYTES).toString('hex');
    const expiresAt =
      this.ttlDays > 0 ? new Date(this.clock.now().getTime() + this.ttlDays * DAY_MS) : null;
    return { token, stored: { hash: hashToken(token), expiresAt } };
  }

  async authenticate(token: string): Promise<Session | null> {
    const hash = lookupHash(token);
    if (hash === null) return null;
    // Every uncached request runs this: a named statement, prepared once per connection.
    const [row] = await this.database.query<SessionRow>(
      'authenticate_token',
      `select ${SESSION_COLUMNS} from live_token_user($1, $2) s`,
      [hash, this.clock.now()],
    );
    return row ? sessionOf(row) : null;
  }

  async revoke(token: string, userId: number, alongside?: AlongsideRevoke): Promise<void> {
    const hash = hashToken(token);
    await this.changes.transaction([userId], async (tx) => {
      const deleted = await tx
        .delete(apiTokens)
        .where(eq(apiTokens.tokenHash, hash))
        .returning({ id: apiTokens.id });
      await alongside?.(tx, deleted.length);
    });
  }

  /** On every instance at once; `alongside` may change more (blocking the user). */
  revokeAll(userId: number, alongside?: AlongsideRevoke): Promise<number> {
    return this.changes.transaction([userId], async (tx) => {
      const deleted = await tx
        .delete(apiTokens)
        .where(eq(apiTokens.userId, userId))
        .returning({ id: apiTokens.id });
      await alongside?.(tx, deleted.length);
      return deleted.length;
    });
  }
}
