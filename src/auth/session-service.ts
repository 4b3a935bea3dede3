import { hash as oneShotHash } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { LRUCache } from 'lru-cache';
import { cacheAging, type UserVersions } from '../cache/user-versions.js';
import type { Database, Db } from '../db/client.js';
import { apiTokens } from '../db/schema.js';
import type { Clock } from '../lib/clock.js';
import type { Random } from '../lib/random.js';
import type { NewToken } from './user-service.js';

export type AuthenticatedUser = { id: number; phoneNumber: string; isStaff: boolean };

/**
 * A live token's user, and the user's version read before the check (null
 * when reads of this user must not be cached now; see UserVersions).
 */
export type Session = { user: AuthenticatedUser; version: string | null };

export type SessionOptions = {
  ttlDays: number;
  versions: UserVersions;
  /** Tokens remembered by this instance; 0 checks every request in the database. */
  cacheSize: number;
};

export type LiveToken = { user: AuthenticatedUser; expiresAtMs: number | null };
type CachedSession = LiveToken & { version: string };

const TOKEN_BYTES = 20; // 160 random bits, written as 40 hex characters like DRF tokens
const TOKEN_FORMAT = /^[0-9a-f]{40}$/;
const DAY_MS = 86_400_000;

/**
 * The columns of a token check, read from `live_token_user(hash, now)` as `s`:
 * the SQL function (drizzle/0003_live_token_user.sql) is the token rule of
 * SPEC section 4, in one place, for this service's own check and for the
 * reads that check the token in the statement that reads (the profile, a
 * referrals page).
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

export function sessionOf(row: SessionRow): LiveToken {
  return {
    user: {
      id: Number(row.session_user_id),
      phoneNumber: row.session_phone_number,
      isStaff: row.session_is_staff,
    },
    expiresAtMs: row.session_expires_at_ms,
  };
}

export function hashToken(token: string): Buffer {
  // The one-shot hash: a third of the cost of createHash() on every request.
  return oneShotHash('sha256', token, 'buffer');
}

/**
 * API tokens. The database holds only the SHA-256 of each token: looking one
 * up by hash needs no constant-time comparison, since an attacker who does not
 * know a token cannot steer its hash. Every sign-in issues a new token.
 *
 * Live tokens are remembered per instance, keyed by their hash, under the
 * user's version: revoking (or blocking) goes through `UserVersions.write`,
 * so every instance stops accepting the token on its next request. Unknown
 * tokens are never remembered.
 */
export class SessionService {
  private readonly ttlDays: number;
  private readonly versions: UserVersions;
  private readonly cache: LRUCache<string, CachedSession> | null;

  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
    private readonly random: Random,
    options: SessionOptions,
  ) {
    this.ttlDays = options.ttlDays;
    this.versions = options.versions;
    this.cache =
      options.cacheSize > 0 ? new LRUCache({ max: options.cacheSize, ...cacheAging(clock) }) : null;
  }

  /** A new token, and what to store of it (see UserService.findOrCreate). */
  newToken(): { token: string; stored: NewToken } {
    const token = this.random.bytes(TOKEN_BYTES).toString('hex');
    const expiresAt =
      this.ttlDays > 0 ? new Date(this.clock.now().getTime() + this.ttlDays * DAY_MS) : null;
    return { token, stored: { hash: hashToken(token), expiresAt } };
  }

  /** The user behind a live token, or null for unknown, expired, revoked or blocked. */
  async authenticate(token: string): Promise<Session | null> {
    if (!TOKEN_FORMAT.test(token)) return null;
    const hash = hashToken(token);
    if (this.cache === null) {
      const found = await this.lookup(hash);
      return found && { user: found.user, version: null };
    }
    const key = hash.toString('base64');
    const cached = this.cache.get(key);
    if (cached !== undefined) {
      if (cached.expiresAtMs !== null && cached.expiresAtMs <= this.clock.now().getTime()) {
        this.cache.delete(key);
        return null;
      }
      const version = await this.versions.current(cached.user.id);
      if (version !== null && version === cached.version) return { user: cached.user, version };
      this.cache.delete(key);
      return this.lookupAndRemember(hash, key, version);
    }
    // The user, hence whose version to read, is known only after a first look.
    const found = await this.lookup(hash);
    if (found === null) return null;
    const version = await this.versions.current(found.user.id);
    if (version === null) return { user: found.user, version };
    return this.lookupAndRemember(hash, key, version);
  }

  /**
   * Whether every token check reads the database (no tokens remembered): a
   * route may then check the token in the very statement that reads its
   * answer, with `authenticateWith`, one round trip instead of two.
   */
  get checksEveryRequest(): boolean {
    return this.cache === null;
  }

  /**
   * The token check done by a read: `read` gets the token's hash and the time
   * to check it at, and runs one statement that selects SESSION_COLUMNS from
   * `live_token_user($1, $2) s` beside what it reads (no row: no live token).
   * Tokens are not remembered here: use it when `checksEveryRequest`.
   */
  async authenticateWith<T extends SessionRow>(
    token: string,
    read: (hash: Buffer, now: Date) => Promise<T | undefined>,
  ): Promise<{ user: AuthenticatedUser; row: T } | null> {
    if (!TOKEN_FORMAT.test(token)) return null;
    const row = await read(hashToken(token), this.clock.now());
    return row === undefined ? null : { user: sessionOf(row).user, row };
  }

  /** Checks the token again, now that `version` was read first, and remembers it under it. */
  private async lookupAndRemember(
    hash: Buffer,
    key: string,
    version: string | null,
  ): Promise<Session | null> {
    const found = await this.lookup(hash);
    if (found === null) return null;
    if (version !== null) this.cache?.set(key, { ...found, version });
    return { user: found.user, version };
  }

  private async lookup(hash: Buffer): Promise<LiveToken | null> {
    // Every uncached request runs this: a named statement, prepared once per connection.
    const [row] = await this.database.query<SessionRow>(
      'authenticate_token',
      `select ${SESSION_COLUMNS} from live_token_user($1, $2) s`,
      [hash, this.clock.now()],
    );
    return row ? sessionOf(row) : null;
  }

  /**
   * Revokes one token; `alongside` runs in the same transaction (the audit
   * entry), so both commit or neither.
   */
  async revoke(
    token: string,
    userId: number,
    alongside?: (tx: Db, revoked: number) => Promise<void>,
  ): Promise<void> {
    const hash = hashToken(token);
    this.cache?.delete(hash.toString('base64'));
    await this.changeAccount(userId, async (tx) => {
      const deleted = await tx
        .delete(apiTokens)
        .where(eq(apiTokens.tokenHash, hash))
        .returning({ id: apiTokens.id });
      await alongside?.(tx, deleted.length);
    });
  }

  /**
   * Revokes every token of the user, on every instance at once; `alongside`
   * runs in the same transaction (blocking the user, the audit entry).
   */
  async revokeAll(
    userId: number,
    alongside?: (tx: Db, revoked: number) => Promise<void>,
  ): Promise<number> {
    return this.changeAccount(userId, async (tx) => {
      const deleted = await tx
        .delete(apiTokens)
        .where(eq(apiTokens.userId, userId))
        .returning({ id: apiTokens.id });
      await alongside?.(tx, deleted.length);
      return deleted.length;
    });
  }

  /**
   * Runs, in one transaction, a change to the user that a token check reads
   * (blocked, staff): every instance's cached sessions of the user are
   * dropped before the change answers, so its next request sees it.
   */
  async changeAccount<T>(userId: number, change: (tx: Db) => Promise<T>): Promise<T> {
    return this.versions.write([userId], () =>
      this.database.db.transaction((tx) => change(tx as unknown as Db)),
    );
  }
}
