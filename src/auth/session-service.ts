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

/** The token check: a live, unexpired token of a user who is not blocked. */
const AUTHENTICATE_SQL = `
  select u.id, u.phone_number, u.is_staff,
    (extract(epoch from t.expires_at) * 1000)::float8 as expires_at_ms
  from api_tokens t join users u on u.id = t.user_id
  where t.token_hash = $1 and (t.expires_at is null or t.expires_at > $2) and not u.is_blocked
  limit 1`;

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
    if (!TOKEN_FORMAT.test(token)) return null;
    // Every uncached request runs this: a named statement, prepared once per connection.
    const [row] = await this.database.query<{
      id: string;
      phone_number: string;
      is_staff: boolean;
      expires_at_ms: number | null;
    }>('authenticate_token', AUTHENTICATE_SQL, [hashToken(token), this.clock.now()]);
    return row
      ? {
          user: { id: Number(row.id), phoneNumber: row.phone_number, isStaff: row.is_staff },
          expiresAtMs: row.expires_at_ms,
        }
      : null;
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
