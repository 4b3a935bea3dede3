import { createHash } from 'node:crypto';
import { and, eq, gt, isNull, or } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { apiTokens, users } from '../db/schema.js';
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
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly ttlDays: number,
  ) {}

  async issue(userId: number): Promise<string> {
    const token = this.random.bytes(TOKEN_BYTES).toString('hex');
    const now = this.clock.now();
    await this.db.insert(apiTokens).values({
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
    const [row] = await this.db
      .select({ id: users.id, phoneNumber: users.phoneNumber, isStaff: users.isStaff })
      .from(apiTokens)
      .innerJoin(users, eq(users.id, apiTokens.userId))
      .where(
        and(
          eq(apiTokens.tokenHash, hashToken(token)),
          or(isNull(apiTokens.expiresAt), gt(apiTokens.expiresAt, this.clock.now())),
          eq(users.isBlocked, false),
        ),
      )
      .limit(1);
    return row ?? null;
  }

  async revoke(token: string): Promise<void> {
    await this.db.delete(apiTokens).where(eq(apiTokens.tokenHash, hashToken(token)));
  }

  async revokeAll(userId: number): Promise<number> {
    const deleted = await this.db
      .delete(apiTokens)
      .where(eq(apiTokens.userId, userId))
      .returning({ id: apiTokens.id });
    return deleted.length;
  }
}
