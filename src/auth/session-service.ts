import { createHash } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { apiTokens } from '../db/schema.js';
import type { Clock } from '../lib/clock.js';
import type { Random } from '../lib/random.js';

export type AuthenticatedUser = { id: number; phoneNumber: string; isStaff: boolean };

const TOKEN_BYTES = 20; // 160 random bits, written as 40 hex characters like DRF tokens
const TOKEN_FORMAT = /^[0-9a-f]{40}$/;
const DAY_MS = 86_400_000;

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/**
 * API tokens. The database holds only the SHA-256 of each token: looking one
 * up by hash needs no constant-time comparison, since an attacker who does not
 * know a token cannot steer its hash. Every sign-in issues a new token.
 */
export class SessionService {
  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly ttlDays: number,
  ) {}

  async issue(userId: number): Promise<string> {
    const token = this.random.bytes(TOKEN_BYTES).toString('hex');
    const now = this.clock.now();
    await this.database.db.insert(apiTokens).values({
      userId,
      tokenHash: hashToken(token),
      createdAt: now,
      expiresAt: this.ttlDays > 0 ? new Date(now.getTime() + this.ttlDays * DAY_MS) : null,
    });
    return token;
  }

  /** The user behind a live token, or null for unknown, expired, revoked or blocked. */
  async authenticate(token: string): Promise<AuthenticatedUser | null> {
    if (!TOKEN_FORMAT.test(token)) return null;
    // Every request runs this: a named statement, prepared once per connection.
    const [row] = await this.database.query<{
      id: string;
      phone_number: string;
      is_staff: boolean;
    }>(
      'authenticate_token',
      `select u.id, u.phone_number, u.is_staff from api_tokens t join users u on u.id = t.user_id
       where t.token_hash = $1 and (t.expires_at is null or t.expires_at > $2) and not u.is_blocked
       limit 1`,
      [hashToken(token), this.clock.now()],
    );
    return row
      ? { id: Number(row.id), phoneNumber: row.phone_number, isStaff: row.is_staff }
      : null;
  }

  async revoke(token: string): Promise<void> {
    await this.database.db.delete(apiTokens).where(eq(apiTokens.tokenHash, hashToken(token)));
  }

  async revokeAll(userId: number): Promise<number> {
    const deleted = await this.database.db
      .delete(apiTokens)
      .where(eq(apiTokens.userId, userId))
      .returning({ id: apiTokens.id });
    return deleted.length;
  }
}
