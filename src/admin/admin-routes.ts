import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import Type from 'typebox';
import { type AuditLog, decodeAuditCursor } from '../audit/audit-log.js';
import { currentUser, requireUser } from '../auth/auth-hook.js';
import type { PhoneResult } from '../auth/phone.js';
import type { Sessions } from '../auth/session-service.js';
import { auditActors, auditTypes, deliveryStates, eventTypes, fraudFlags } from '../db/schema.js';
import { ApiError, fieldMessages } from '../errors.js';
import type { EventLog } from '../events/event-log.js';
import { bodyErrorResponses, errorRef } from '../http/schemas.js';
import { decodeCursor } from '../referrals/referral-service.js';
import {
  type AdminActor,
  type AdminService,
  decodeUserCursor,
  MIN_LAST_DIGITS,
  searchTerms,
} from './admin-service.js';

export type AdminRoutesOptions = {
  admin: AdminService;
  audit: AuditLog;
  eventLog: EventLog;
  sessions: Sessions;
  /** Any way of writing a number -> E.164 (search). */
  normalizePhone: (input: string) => PhoneResult;
};

const nullableId = Type.Union([Type.Integer(), Type.Null()]);

const AdminUserSchema = Type.Object(
  {
    id: Type.Integer(),
    phone_number: Type.String({ examples: ['+79991234567'] }),
    invite_code: Type.String({ examples: ['A1B2C3'] }),
    joined_at: Type.String({ format: 'date-time' }),
    is_staff: Type.Boolean(),
    is_blocked: Type.Boolean(),
    referrals_count: Type.Integer(),
    referrer_id: Type.Union([Type.Integer(), Type.Null()], {
      description: 'The user whose invite code this user activated',
    }),
    flags_count: Type.Integer({ description: 'Fraud flags on the activation (SPEC 6)' }),
  },
  { $id: 'AdminUser', title: 'AdminUser' },
);
const adminUserRef = Type.Ref('AdminUser');

const FraudFlagSchema = Type.Object(
  {
    reason: Type.Union(fraudFlags.map((reason) => Type.Literal(reason))),
    description: Type.String({ description: 'What the reason means, in English' }),
    ip: Type.Optional(Type.String({ description: 'same_ip: the user’s sign-up IP' })),
    referrer_ip: Type.Optional(Type.String({ description: 'same_ip: the referrer’s sign-up IP' })),
    network: Type.Optional(
      Type.String({ description: 'same_ip: the address or IPv6 /64 both share' }),
    ),
    device_id: Type.Optional(Type.String({ description: 'same_device: the shared device id' })),
    activations_in_hour: Type.Optional(
      Type.Integer({
        description: 'velocity: the referrer’s activations in the hour up to this one, included',
      }),
    ),
  },
  { $id: 'FraudFlag', title: 'FraudFlag' },
);

const nextCursor = Type.Union([Type.String(), Type.Null()], {
  description: 'Pass back as `cursor` for the next page; null on the last page',
});

const AdminReferralsSchema = Type.Object(
  {
    count: Type.Integer({ description: 'Total number of referrals' }),
    results: Type.Array(
      Type.Object({
        id: Type.Integer(),
        phone_number: Type.String(),
        activated_at: Type.String({ format: 'date-time' }),
      }),
    ),
    next_cursor: nextCursor,
  },
  { $id: 'AdminReferralPage', title: 'AdminReferralPage' },
);

const AuditEntrySchema = Type.Object(
  {
    id: Type.Integer(),
    at: Type.String({ format: 'date-time' }),
    type: Type.Union(auditTypes.map((type) => Type.Literal(type))),
    actor: Type.Union(
      auditActors.map((actor) => Type.Literal(actor)),
      {
        description:
          '`user`: the signed-in user `actor_id`; `cli`: the command line; `anonymous`: a client not signed in; `system`: the service itself (a budget that ran out)',
      },
    ),
    actor_id: nullableId,
    user_id: Type.Union([Type.Integer(), Type.Null()], { description: 'Whom the entry is about' }),
    ip: Type.Union([Type.String(), Type.Null()]),
    details: Type.Object({}, { additionalProperties: true }),
  },
  { $id: 'AuditEntry', title: 'AuditEntry' },
);

const isoTime = Type.String({ format: 'date-time' });
const nullableTime = Type.Union([isoTime, Type.Null()]);

const EventSchema = Type.Object(
  {
    id: Type.Integer({ description: 'Also the `webhook-id` of its deliveries' }),
    type: Type.Union(eventTypes.map((type) => Type.Literal(type))),
    timestamp: isoTime,
    data: Type.Object({}, { additionalProperties: true, description: 'As delivered (SPEC 6)' }),
    deliveries: Type.Array(
      Type.Object({
        url: Type.String(),
        state: Type.Union(deliveryStates.map((state) => Type.Literal(state))),
        attempts: Type.Integer(),
        last_error: Type.Union([Type.String(), Type.Null()]),
        last_attempt_at: nullableTime,
        next_attempt_at: Type.Union([isoTime, Type.Null()], {
          description: 'When a pending delivery is tried next; null once delivered or failed',
        }),
        delivered_at: nullableTime,
      }),
      { description: 'One per WEBHOOK_URLS entry at the time of the event' },
    ),
  },
  { $id: 'Event', title: 'Event' },
);

const accountChange = (description: string) =>
  Type.Object(
    {
      user: adminUserRef,
      revoked: Type.Integer({ description: 'Tokens revoked by this action' }),
    },
    { description },
  );

const Limit = Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 }));
const Cursor = Type.Optional(
  Type.String({ maxLength: 128, description: '`next_cursor` of the previous page' }),
);
const UserIdParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: 2 ** 53 - 1 }) });

const security = [{ TokenAuth: [] }];
const readErrors = { 400: errorRef, 401: errorRef, 403: errorRef, 503: errorRef } as const;

function invalidCursor(): ApiError {
  return new ApiError('invalid_cursor', {
    fields: { cursor: [fieldMessages.cursor] },
  });
}

function checkLimit(limit: number): void {
  // Ajv coerces '1e309' to Infinity and lets it through as an "integer".
  if (!Number.isSafeInteger(limit)) {
    throw new ApiError(
      'validation_error',
      { problem: 'fields' },
      { fields: { limit: [fieldMessages.pageLimit] } },
    );
  }
}

function userNotFound(): ApiError {
  return new ApiError('not_found', { user: 'by_id' });
}

/**
 * The admin API (SPEC 5): staff tokens only. A token of anyone else is a 403,
 * checked on every request against the token's current user, so a revoked
 * admin is refused on their next request.
 */
export const adminRoutes: FastifyPluginAsyncTypebox<AdminRoutesOptions> = async (app, options) => {
  const { admin, audit, eventLog, sessions, normalizePhone } = options;
  app.addSchema(AdminUserSchema);
  app.addSchema(AdminReferralsSchema);
  app.addSchema(AuditEntrySchema);
  app.addSchema(FraudFlagSchema);
  app.addSchema(EventSchema);

  const authenticated = requireUser(sessions);
  const staffOnly = async (request: FastifyRequest) => {
    if (!currentUser(request).isStaff) throw new ApiError('forbidden', { why: 'not_admin' });
  };
  const preHandler = [authenticated, staffOnly];
  const actorOf = (request: FastifyRequest): AdminActor => ({
    kind: 'user',
    userId: currentUser(request).id,
    ip: request.ip,
  });

  app.get(
    '/api/admin/users/',
    {
      preHandler,
      schema: {
        tags: ['admin'],
        summary: 'Search and list users',
        description:
          '`q` matches a phone number written any way (`+7 999 123-45-67`, `8 (999) 123-45-67`), ' +
          `its last digits (${MIN_LAST_DIGITS} or more), or an invite code in any case. ` +
          'Sorted by join date, newest first by default; pages never skip or repeat a user.',
        security,
        querystring: Type.Object({
          q: Type.Optional(Type.String({ maxLength: 64 })),
          sort: Type.Optional(
            Type.Union([Type.Literal('-joined_at'), Type.Literal('joined_at')], {
              default: '-joined_at',
            }),
          ),
          cursor: Cursor,
          limit: Limit,
        }),
        response: {
          200: Type.Object(
            {
              count: Type.Integer({ description: 'Users matching `q` (all users without it)' }),
              results: Type.Array(adminUserRef),
              next_cursor: nextCursor,
            },
            { description: 'A page of users, by join date' },
          ),
          ...readErrors,
        },
      },
    },
    async (request) => {
      const { q, sort = '-joined_at', cursor, limit = 100 } = request.query;
      checkLimit(limit);
      const after = cursor ? decodeUserCursor(cursor, sort) : null;
      if (cursor && after === null) throw invalidCursor();
      const terms = q?.trim() ? searchTerms(q, normalizePhone) : undefined;
      if (terms === null) {
        throw new ApiError(
          'validation_error',
          { problem: 'search', minLastDigits: MIN_LAST_DIGITS },
          { fields: { q: [fieldMessages.searchTerms(MIN_LAST_DIGITS)] } },
        );
      }
      return admin.searchUsers({ terms, sort, after, limit });
    },
  );

  app.get(
    '/api/admin/users/:id/',
    {
      preHandler,
      schema: {
        tags: ['admin'],
        summary: 'One user, with referrer, first referrals, live tokens and flags',
        security,
        params: UserIdParams,
        response: {
          200: Type.Object(
            {
              ...AdminUserSchema.properties,
              referrer: Type.Union([adminUserRef, Type.Null()]),
              referrals: Type.Ref('AdminReferralPage'),
              active_tokens: Type.Integer({ description: 'Tokens not revoked or expired' }),
              flags: Type.Array(Type.Ref('FraudFlag'), {
                description:
                  'Fraud flags of the user’s activation (SPEC 6): signals for a human, never a refusal; empty when none or not activated',
              }),
            },
            { description: 'The user, with referrer, first referrals, live tokens and flags' },
          ),
          ...readErrors,
          404: errorRef,
        },
      },
    },
    async (request) => {
      const user = await admin.getUser(request.params.id);
      if (user === null) throw userNotFound();
      return user;
    },
  );

  app.get(
    '/api/admin/users/:id/referrals/',
    {
      preHandler,
      schema: {
        tags: ['admin'],
        summary: 'Page through a user’s referrals, oldest first',
        security,
        params: UserIdParams,
        querystring: Type.Object({ cursor: Cursor, limit: Limit }),
        response: {
          200: Type.Ref('AdminReferralPage', { description: 'A page of referrals, oldest first' }),
          ...readErrors,
          404: errorRef,
        },
      },
    },
    async (request) => {
      const { cursor, limit = 100 } = request.query;
      checkLimit(limit);
      const afterSeq = cursor ? decodeCursor(cursor) : 0;
      if (afterSeq === null) throw invalidCursor();
      const page = await admin.listReferrals(request.params.id, afterSeq, limit);
      if (page === null) throw userNotFound();
      return page;
    },
  );

  const change = (
    path: string,
    summary: string,
    description: string,
    done: string,
    run: (userId: number, actor: AdminActor) => ReturnType<AdminService['block']>,
  ) =>
    app.post(
      `/api/admin/users/:id/${path}/`,
      {
        preHandler,
        schema: {
          tags: ['admin'],
          summary,
          description,
          security,
          params: UserIdParams,
          response: {
            200: accountChange(done),
            ...bodyErrorResponses,
            ...readErrors,
            404: errorRef,
          },
        },
      },
      async (request) => {
        const changed = await run(request.params.id, actorOf(request));
        if (changed === null) throw userNotFound();
        return changed;
      },
    );
  change(
    'block',
    'Block a user',
    'Revokes all their tokens and refuses their sign-ins, on every instance from the next request on.',
    'The user is blocked; their tokens are revoked',
    (id, actor) => admin.block(id, actor),
  );
  change(
    'unblock',
    'Unblock a user',
    'They may sign in again; their revoked tokens stay revoked.',
    'The user is unblocked',
    (id, actor) => admin.unblock(id, actor),
  );
  change(
    'revoke-tokens',
    'Revoke all of a user’s tokens',
    'Signs them out everywhere; they may sign in again.',
    'The user’s tokens are revoked',
    (id, actor) => admin.revokeTokens(id, actor),
  );

  app.get(
    '/api/admin/stats/',
    {
      preHandler,
      schema: {
        tags: ['admin'],
        summary: 'Totals and top referrers',
        security,
        response: {
          200: Type.Object(
            {
              users_total: Type.Integer(),
              users_last_24h: Type.Integer(),
              activations_total: Type.Integer({
                description: 'Users who activated an invite code',
              }),
              activations_last_24h: Type.Integer(),
              sign_ins_last_24h: Type.Integer({ description: 'From the audit log' }),
              top_referrers: Type.Array(
                Type.Object({
                  id: Type.Integer(),
                  phone_number: Type.String(),
                  referrals_count: Type.Integer(),
                }),
                { description: 'The 10 users with the most referrals' },
              ),
            },
            { description: 'Totals and the top referrers' },
          ),
          ...readErrors,
        },
      },
    },
    () => admin.stats(),
  );

  app.get(
    '/api/admin/audit/',
    {
      preHandler,
      schema: {
        tags: ['admin'],
        summary: 'Page through the audit log, newest first',
        description:
          'Filtered by the user an entry is about and by type. `count` is exact up to 10,000 ' +
          '(`count_exact`); past that it says "at least".',
        security,
        querystring: Type.Object({
          user_id: Type.Optional(Type.Integer({ minimum: 1, maximum: 2 ** 53 - 1 })),
          type: Type.Optional(Type.Union(auditTypes.map((type) => Type.Literal(type)))),
          cursor: Cursor,
          limit: Limit,
        }),
        response: {
          200: Type.Object(
            {
              count: Type.Integer(),
              count_exact: Type.Boolean(),
              results: Type.Array(Type.Ref('AuditEntry')),
              next_cursor: nextCursor,
            },
            { description: 'A page of audit entries, newest first' },
          ),
          ...readErrors,
        },
      },
    },
    async (request) => {
      const { user_id, type, cursor, limit = 100 } = request.query;
      checkLimit(limit);
      const beforeId = cursor ? decodeAuditCursor(cursor) : undefined;
      if (beforeId === null) throw invalidCursor();
      return audit.list({ userId: user_id, type, beforeId, limit });
    },
  );

  app.get(
    '/api/admin/events/',
    {
      preHandler,
      schema: {
        tags: ['admin'],
        summary: 'Page through the event log, oldest first',
        description:
          'Every `user.created` and `invite.activated` event in id order, each with the state of ' +
          'its webhook deliveries, for receivers that missed some: pass the last id you have as ' +
          '`after`, then `next_after` while `has_more`.',
        security,
        querystring: Type.Object({
          after: Type.Optional(
            Type.Integer({
              minimum: 0,
              maximum: 2 ** 53 - 1,
              default: 0,
              description: 'Events with a greater id; 0: from the first',
            }),
          ),
          limit: Limit,
        }),
        response: {
          200: Type.Object(
            {
              results: Type.Array(Type.Ref('Event')),
              next_after: Type.Integer({ description: 'Pass as `after` for the next page' }),
              has_more: Type.Boolean(),
            },
            { description: 'A page of events, in id order' },
          ),
          ...readErrors,
        },
      },
    },
    async (request) => {
      const { after = 0, limit = 100 } = request.query;
      checkLimit(limit);
      if (!Number.isSafeInteger(after)) {
        throw new ApiError(
          'validation_error',
          { problem: 'fields' },
          { fields: { after: [fieldMessages.eventId] } },
        );
      }
      return eventLog.list(after, limit);
    },
  );
};
