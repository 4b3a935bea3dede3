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
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

/** The reasons an activation is flagged (SPEC 6); each is a signal for a human, never a refusal. */
export const fraudFlags = ['same_ip', 'same_device', 'velocity'] as const;

export type FraudFlag = (typeof fraudFlags)[number];

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
    /**
     * The JSON of the profile's first referrals (as the API writes them),
     * written once, when the referral that fills them (the 100th) is
     * activated: positions only grow and referrals are never removed, so these
     * never change afterwards, and a profile read does no work per referral.
     * null until then: read from the referrals themselves.
     */
    firstReferrals: text('first_referrals'),
    /**
     * This user as a referral in their referrer's pages: the JSON the API
     * writes (`{"phone_number", "activated_at"}`), made by PostgreSQL from the
     * two columns (`referral_json`, migrations 0004 and 0008), so a page of
     * referrals is read, not formatted, row by row. null until activated.
     */
    asReferral: text('as_referral').generatedAlwaysAs(
      sql`referral_json(phone_number, activated_at)`,
    ),
    isStaff: boolean('is_staff').notNull().default(false),
    isBlocked: boolean('is_blocked').notNull().default(false),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull(),
    /** The client IP of the first sign-in (fraud signals, SPEC 6); null when made by the CLI. */
    signupIp: text('signup_ip'),
    /** The device id the first sign-in sent (X-Device-Id or device_id), if any. */
    signupDeviceId: text('signup_device_id'),
    /**
     * The fraud flags of this user's activation (src/events/fraud-signals.ts):
     * set with referrer_id, once; null before the activation.
     */
    fraudFlags: text('fraud_flags').array().$type<FraudFlag[]>(),
  },
  (t) => [
    uniqueIndex('users_phone_number_key').on(t.phoneNumber),
    uniqueIndex('users_invite_code_key').on(t.inviteCode),
    // Also holds as_referral (INCLUDE, migration 0008): a page of referrals is read from it alone.
    uniqueIndex('users_referrer_seq_key').on(t.referrerId, t.referralSeq),
    // The admin user list, newest or oldest first, and the sign-ups of the last 24 hours.
    index('users_created_at_idx').on(t.createdAt, t.id),
    // Search by the last digits of a number: a prefix of the reversed number.
    // Also holds created_at, id and phone_number (INCLUDE, migration 0009): the
    // matches are counted and ordered from it alone.
    index('users_phone_reversed_idx').using(
      'btree',
      sql`reverse(${t.phoneNumber}) text_pattern_ops`,
    ),
    // The velocity flag: a referrer's activations of the last hour, counted while their row is locked.
    index('users_referrer_activated_at_idx')
      .on(t.referrerId, t.activatedAt)
      .where(sql`${t.referrerId} is not null`),
    index('users_activated_at_idx').on(t.activatedAt).where(sql`${t.activatedAt} is not null`),
    index('users_top_referrers_idx')
      .on(t.referralsCount.desc().nullsFirst(), t.id)
      .where(sql`${t.referralsCount} > 0`),
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

/**
 * Totals of the users table, kept by triggers (drizzle/0002_user_totals.sql)
 * in one row per shard: a count(*) of a million users takes over 100 ms, a
 * sum of these rows well under one. Each database connection adds to its own
 * shard, so concurrent sign-ups do not queue on one row.
 */
export const userTotals = pgTable('user_totals', {
  shard: integer('shard').primaryKey(),
  users: bigint('users', { mode: 'number' }).notNull().default(0),
  /** Users who activated an invite code. */
  activations: bigint('activations', { mode: 'number' }).notNull().default(0),
});

export const auditTypes = [
  'sign_in',
  'sign_in_failed',
  'code_sent',
  'invite_activated',
  'logout',
  'logout_all',
  'admin_block',
  'admin_unblock',
  'admin_revoke_tokens',
  'admin_grant',
  'admin_revoke',
  'sms_region_budget_hit',
] as const;

export type AuditType = (typeof auditTypes)[number];

/**
 * Who did it: a signed-in user (actor_id), the command line, a client not signed in, or the
 * service itself (a budget that ran out).
 */
export const auditActors = ['user', 'cli', 'anonymous', 'system'] as const;

export type AuditActor = (typeof auditActors)[number];

/**
 * What happened to whom, appended by the application and never changed by it.
 * No foreign keys: an entry outlives whatever it names, and an insert takes no
 * lock on the user's row. Never a one-time code or a token in `details`.
 */
export const auditLog = pgTable(
  'audit_log',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true, mode: 'date' }).notNull(),
    type: text('type').$type<AuditType>().notNull(),
    actor: text('actor').$type<AuditActor>().notNull(),
    actorId: bigint('actor_id', { mode: 'number' }),
    /** The user the entry is about (null: a number nobody has signed in with). */
    userId: bigint('user_id', { mode: 'number' }),
    ip: text('ip'),
    details: jsonb('details').$type<Record<string, unknown>>().notNull().default({}),
  },
  (t) => [
    // Pages are newest first, by id: one per filter, plus the sign-ins of the last 24 hours.
    index('audit_log_user_idx').on(t.userId, t.id).where(sql`${t.userId} is not null`),
    index('audit_log_type_idx').on(t.type, t.id),
    index('audit_log_type_at_idx').on(t.type, t.at),
    check(
      'audit_log_type_known',
      sql.raw(`type in (${auditTypes.map((type) => `'${type}'`).join(', ')})`),
    ),
    check(
      'audit_log_actor_known',
      sql.raw(`actor in (${auditActors.map((actor) => `'${actor}'`).join(', ')})`),
    ),
  ],
);

export type UserRow = typeof users.$inferSelect;

export const eventTypes = ['user.created', 'invite.activated'] as const;

export type EventType = (typeof eventTypes)[number];

/**
 * The transactional outbox (SPEC 6): each event is inserted by the statement
 * or transaction that makes the change it reports, so it exists exactly when
 * the change committed. Never changed after the insert.
 */
export const events = pgTable(
  'events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    type: text('type').$type<EventType>().notNull(),
    data: jsonb('data').$type<Record<string, unknown>>().notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull(),
  },
  () => [
    check(
      'events_type_known',
      sql.raw(`type in (${eventTypes.map((type) => `'${type}'`).join(', ')})`),
    ),
  ],
);

export const deliveryStates = ['pending', 'delivered', 'failed'] as const;

export type DeliveryState = (typeof deliveryStates)[number];

/**
 * One row per event and WEBHOOK_URLS entry, written with the event. A worker
 * claims a due row by moving `next_attempt_at` past the attempt (the lease)
 * and stamping `claim`: a claim that is never settled (the instance died)
 * makes the row due again when the lease runs out, and a late settle of an
 * expired claim changes nothing, because its `claim` no longer matches.
 */
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    eventId: bigint('event_id', { mode: 'number' })
      .notNull()
      .references(() => events.id, { onDelete: 'cascade' }),
    url: text('url').notNull(),
    state: text('state').$type<DeliveryState>().notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    /** When a pending delivery is next due; while claimed, when the claim's lease runs out. */
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true, mode: 'date' }).notNull(),
    /** The attempt in flight (random), null when none. */
    claim: text('claim'),
    lastError: text('last_error'),
    lastAttemptAt: timestamp('last_attempt_at', { withTimezone: true, mode: 'date' }),
    deliveredAt: timestamp('delivered_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [
    uniqueIndex('webhook_deliveries_event_url_key').on(t.eventId, t.url),
    // The worker's scan and the outbox_pending gauge: only rows still to deliver.
    index('webhook_deliveries_due_idx').on(t.nextAttemptAt).where(sql`${t.state} = 'pending'`),
    check(
      'webhook_deliveries_state_known',
      sql.raw(`state in (${deliveryStates.map((state) => `'${state}'`).join(', ')})`),
    ),
  ],
);
