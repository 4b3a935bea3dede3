import type { SwaggerTransform } from '@fastify/swagger';
import Type from 'typebox';
import { type ErrorCode, errorCodes, type errorStatus } from '../errors.js';

/** The one error body of the whole API. */
export const ErrorSchema = Type.Object(
  {
    error: Type.String({ description: 'Human-readable message' }),
    code: Type.Unsafe<ErrorCode>({
      type: 'string',
      enum: errorCodes,
      description: 'Machine-readable error code',
    }),
    fields: Type.Optional(
      Type.Record(Type.String(), Type.Array(Type.String()), {
        description: 'Per-field messages for invalid input',
      }),
    ),
    attempts_left: Type.Optional(Type.Integer({ description: 'Guesses left for this code' })),
    retry_after: Type.Optional(
      Type.Integer({ description: 'Seconds to wait (also in Retry-After)' }),
    ),
  },
  { $id: 'Error', title: 'Error' },
);

export const errorRef = Type.Ref('Error');

type ErrorStatus = (typeof errorStatus)[ErrorCode];

/** What each error status of src/errors.ts means; the type makes a new status need a sentence. */
function errorDescriptions(bodyLimitBytes: number): Record<ErrorStatus, string> {
  return {
    400: 'Invalid input, a wrong or expired code, or a refused activation: `code` tells which (and `fields`, for invalid input, what is wrong with each field)',
    401: 'Missing, unknown, expired or revoked token',
    403: 'Forbidden: the account is blocked, or the token is not a staff member’s',
    404: 'No such resource',
    408: 'The request was not received within REQUEST_TIMEOUT_SECONDS',
    405: 'The path does not take this method (see `Allow`)',
    413: `The request body is over ${bodyLimitBytes / 1024} KiB`,
    415: 'The body is neither JSON nor form-encoded',
    417: 'An `Expect` other than `100-continue`',
    431: 'The request headers are too large',
    429: 'Rate limited, or too many wrong codes: `retry_after` (and `Retry-After`) says in how many seconds to try again',
    500: 'Unexpected server error',
    502: 'The SMS provider did not accept the message',
    503: 'A backing store (the database or Redis), or the CAPTCHA check, is unreachable; try again shortly',
  };
}

/**
 * A @fastify/swagger `transform` that describes, once for the whole API, each error response a
 * route declares without a description of its own: a route's 200 carries its own `description`,
 * and the one of `{ $ref: 'Error' }` depends only on the status. (@fastify/swagger takes a
 * response's description from its schema's `description`, or writes "Default Response".)
 */
export function describeErrorResponses(bodyLimitBytes: number): SwaggerTransform {
  const descriptions: Partial<Record<string, string>> = errorDescriptions(bodyLimitBytes);
  return ({ schema, url }) => {
    const response = schema?.response as Record<string, object> | undefined;
    if (!response) return { schema, url };
    const described = Object.fromEntries(
      Object.entries(response).map(([status, body]) => {
        const description = descriptions[status];
        return description === undefined || 'description' in body
          ? [status, body]
          : [status, { ...body, description }];
      }),
    );
    return { schema: { ...schema, response: described }, url };
  };
}

export const PhoneNumber = Type.String({
  minLength: 1,
  maxLength: 64,
  description: 'Phone number; E.164 (+79991234567) or national form (8 999 123-45-67)',
  examples: ['+79991234567'],
});

export const ReferralSchema = Type.Object({
  phone_number: Type.String({ examples: ['+79997654321'] }),
  activated_at: Type.String({
    format: 'date-time',
    description: 'When the invite code was activated',
  }),
});

export const ProfileSchema = Type.Object(
  {
    id: Type.Integer(),
    phone_number: Type.String({ examples: ['+79991234567'] }),
    invite_code: Type.String({ pattern: '^[A-Z0-9]{6}$', examples: ['A1B2C3'] }),
    activated_invite_code: Type.Union([Type.String(), Type.Null()], {
      description: 'The invite code this user activated, or null',
    }),
    referrals: Type.Array(ReferralSchema, {
      description: 'Users who activated this user’s code, oldest first (the first 100)',
    }),
    referrals_count: Type.Integer({ description: 'Total number of referrals' }),
  },
  { $id: 'Profile', title: 'Profile' },
);

export const profileRef = Type.Ref('Profile');

export const UserSchema = Type.Object({
  id: Type.Integer(),
  phone_number: Type.String(),
  invite_code: Type.String(),
  activated_invite_code: Type.Union([Type.String(), Type.Null()]),
});

/** Errors any request with a body can meet before its handler runs. */
export const bodyErrorResponses = { 400: errorRef, 413: errorRef, 415: errorRef } as const;
