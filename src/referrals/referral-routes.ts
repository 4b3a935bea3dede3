import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import Type from 'typebox';
import type { AuditLog } from '../audit/audit-log.js';
import { currentUser, readAsUser, requireUser } from '../auth/auth-hook.js';
import type { AuthenticatedUser, Sessions } from '../auth/session-service.js';
import { ApiError, fieldMessages } from '../errors.js';
import type { Outbox } from '../events/outbox.js';
import {
  bodyErrorResponses,
  errorRef,
  ProfileSchema,
  profileRef,
  ReferralSchema,
} from '../http/schemas.js';
import { type JsonArray, withJsonArray } from '../lib/json-array.js';
import type { Metrics } from '../ops/metrics.js';
import { decodeCursor, type Referrals } from './referral-service.js';

export type ReferralRoutesOptions = {
  referrals: Referrals;
  sessions: Sessions;
  audit: AuditLog;
  /** Writes `invite.activated` in the activation's transaction. */
  outbox: Outbox;
  metrics: Metrics;
};

export const referralRoutes: FastifyPluginAsyncTypebox<ReferralRoutesOptions> = async (
  app,
  options,
) => {
  const { referrals, sessions, audit, metrics, outbox } = options;
  app.addSchema(ProfileSchema);
  const authenticated = requireUser(sessions);

  // The answer's JSON: the route's serializer for its fields, the referrals'
  // text as the database wrote it (JsonArray). A cache hit returns the very
  // same object, so its bytes are remembered beside it (and dropped with it);
  // sending bytes also spares encoding a string on every answer.
  const encoded = new WeakMap<object, Buffer>();
  const jsonBytes = <K extends string>(
    reply: FastifyReply,
    value: Record<K, JsonArray<unknown>>,
    field: K,
  ) => {
    let body = encoded.get(value);
    if (body === undefined) {
      // The route's serializer is fast-json-stringify from its 200 schema: a string.
      const fields = reply.serialize({ ...value, [field]: [] }) as string;
      body = Buffer.from(withJsonArray(fields, field, value[field]));
      encoded.set(value, body);
    }
    // Bytes with a JSON content type are sent as they are, not serialised again.
    // The handler returns them: a returned reply would be a thenable that
    // Fastify waits on, with a listener on the response for every answer.
    reply.type('application/json; charset=utf-8');
    return body as never;
  };

  const loadProfile = async (user: AuthenticatedUser) => {
    const profile = await referrals.getProfile(user);
    // The token was valid a moment ago; a user deleted in between is signed out.
    if (profile === null) throw new ApiError('invalid_token', { of: 'session' });
    return profile;
  };

  app.get(
    '/api/profile/',
    {
      schema: {
        tags: ['profile'],
        summary: 'Own profile with invite code and referrals',
        security: [{ TokenAuth: [] }],
        response: {
          200: Type.Ref('Profile', { description: 'The profile, with the first 100 referrals' }),
          401: errorRef,
          503: errorRef,
        },
      },
    },
    // The token is checked by the read itself (no preHandler): on the plain
    // path one statement checks it and reads the profile.
    async (request, reply) =>
      jsonBytes(
        reply,
        await readAsUser(request, reply, (token) => referrals.getProfileOfToken(token)),
        'referrals',
      ),
  );

  app.post(
    '/api/profile/',
    {
      preHandler: authenticated,
      schema: {
        tags: ['profile'],
        summary: 'Activate another user’s invite code',
        description:
          'A user activates at most one code, ever; never their own; never one that would close a cycle of referrals. Input is trimmed and case-insensitive.',
        security: [{ TokenAuth: [] }],
        body: Type.Object({
          invite_code: Type.String({ minLength: 1, maxLength: 32, examples: ['X9Y8Z7'] }),
        }),
        response: {
          200: Type.Object(
            {
              message: Type.String({ examples: ['Invite code activated successfully.'] }),
              profile: profileRef,
            },
            { description: 'The code is activated; the updated profile' },
          ),
          ...bodyErrorResponses,
          401: errorRef,
          503: errorRef,
        },
      },
    },
    async (request) => {
      const user = currentUser(request);
      const result = await referrals.activate(user.id, request.body.invite_code, async (tx, a) => {
        await audit.byUser(tx, 'invite_activated', user.id, request.ip, {
          referrer_id: a.referrerId,
          flags: a.flags,
        });
        // The event commits with the activation, or neither does.
        await outbox.inviteActivated(tx, {
          refereeId: user.id,
          referrerId: a.referrerId,
          flags: a.flags,
        });
      });
      metrics.inviteActivations.inc({ result: result.ok ? 'ok' : result.error });
      if (!result.ok) throw new ApiError(result.error);
      // Counted once committed. The answer says nothing of them: a flag is for staff, not a hint to the user.
      for (const reason of result.flags) metrics.fraudFlags.inc({ reason });
      const profile = await loadProfile(user);
      return {
        message: 'Invite code activated successfully.',
        profile: { ...profile, referrals: profile.referrals.items() },
      };
    },
  );

  app.get(
    '/api/profile/referrals/',
    {
      schema: {
        tags: ['profile'],
        summary: 'Page through own referrals, oldest first',
        security: [{ TokenAuth: [] }],
        querystring: Type.Object({
          cursor: Type.Optional(
            Type.String({ maxLength: 64, description: '`next_cursor` of the previous page' }),
          ),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
        }),
        response: {
          200: Type.Object(
            {
              count: Type.Integer({ description: 'Total number of referrals' }),
              results: Type.Array(ReferralSchema),
              next_cursor: Type.Union([Type.String(), Type.Null()], {
                description: 'Pass back as `cursor` for the next page; null on the last page',
              }),
            },
            { description: 'A page of referrals, oldest first' },
          ),
          400: errorRef,
          401: errorRef,
          503: errorRef,
        },
      },
    },
    async (request, reply) => {
      const { cursor, limit = 100 } = request.query;
      const afterSeq = pagePosition(cursor, limit);
      if (afterSeq instanceof ApiError) {
        // The token is checked by the read; a request without a live token is a 401 first.
        await authenticated(request, reply);
        throw afterSeq;
      }
      const page = await readAsUser(request, reply, (token) =>
        referrals.listReferralsOfToken(token, afterSeq, limit),
      );
      return jsonBytes(reply, page, 'results');
    },
  );
};

/** The position a page starts after, or the 400 of a query the schema let through. */
function pagePosition(cursor: string | undefined, limit: number): number | ApiError {
  // Ajv coerces '1e309' to Infinity and lets it through as an "integer".
  if (!Number.isSafeInteger(limit)) {
    return new ApiError(
      'validation_error',
      { problem: 'fields' },
      { fields: { limit: [fieldMessages.pageLimit] } },
    );
  }
  if (cursor === undefined || cursor === '') return 0;
  return (
    decodeCursor(cursor) ??
    new ApiError('invalid_cursor', { fields: { cursor: [fieldMessages.cursor] } })
  );
}
