import { sql } from 'drizzle-orm';
import {
  type AnyPgColumn,
  bigint,
  bigserial,
  boolean,
  char,
  check,
  customType,
  index,
  integer,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

const bytea = customType<{ data: Buffer; driverData: Buffer }>({
  dataType: () => 'bytea',
});

export const users = pgTable(
  'users',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    /** E.164, e.g. +79991234567: one number is one user. */
    phoneNumber: text('phone_number').notNull(),
    inviteCode: char('invite_code', { length: 6 }).notNull(),
    /** The user whose invite code this user activated; set once, never changed. */
    referrerId: bigint('referrer_id', { mode: 'number' }).references((): AnyPgColumn => users.id),
    activatedAt: timestamp('activated_at', { withTimezone: true, mode: 'date' }),
    /**
     * Position of this user among the referrer's referrals (1, 2, …). Assigned
     * while the referrer's row is locked, so it grows in commit order: a cursor on
     * it never skips or repeats a referral, even while new ones arrive.
     */
    referralSeq: integer('referral_seq'),
    referralsCount: integer('referrals_count').notNull().default(0),
    isStaff: boolean('is_staff').notNull().default(false),
    isBlocked: boolean('is_blocked').notNull().default(false),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull(),
  },
  (t) => [
    uniqueIndex('users_phone_number_key').on(t.phoneNumber),
    uniqueIndex('users_invite_code_key').on(t.inviteCode),
    uniqueIndex('users_referrer_seq_key').on(t.referrerId, t.referralSeq),
    check('users_invite_code_format', sql`${t.inviteCode} ~ '^[A-Z0-9]{6}$'`),
    check('users_not_own_referrer', sql`${t.referrerId} <> ${t.id}`),
  ],
);

export const apiTokens = pgTable(
  'api_tokens',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    userId: bigint('user_id', { mode: 'number' })
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    /** SHA-256 of the token: the token itself is never stored. */
    tokenHash: bytea('token_hash').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull(),
    /** null: never expires (TOKEN_TTL_DAYS=0). */
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [
    uniqueIndex('api_tokens_token_hash_key').on(t.tokenHash),
    index('api_tokens_user_id_idx').on(t.userId),
  ],
);

export type UserRow = typeof users.$inferSelect;
