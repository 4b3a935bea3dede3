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

type Found = { user: AuthenticatedUser; expiresAtMs: number | null };
type CachedSession = Found & { version: string };

const TOKEN_BYTES = 20; // 160 random bits, written as 40 hex characters like DRF tokens
const TOKEN_FORMAT = /^[0-9a-f]{40}$/;
const DAY_MS = 86_400_000;

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

  private async lookup(hash: Buffer): Promise<Found | null> {
    // Every uncached request runs this: a named statement, prepared once per connection.
    const [row] = await this.database.query<{
      id: string;
      phone_number: string;
      is_staff: boolean;
      expires_at_ms: number | null;
    }>(
      'authenticate_token',
      `select u.id, u.phone_number, u.is_staff,
         (extract(epoch from t.expires_at) * 1000)::float8 as expires_at_ms
       from api_tokens t join users u on u.id = t.user_id
       where t.token_hash = $1 and (t.expires_at is null or t.expires_at > $2) and not u.is_blocked
       limit 1`,
      [hash, this.clock.now()],
    );
    return row
      ? {
          user: { id: Number(row.id), phoneNumber: row.phone_number, isStaff: row.is_staff },
          expiresAtMs: row.expires_at_ms,
        }
      : null;
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
