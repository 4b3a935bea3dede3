import Type from 'typebox';
import { type ErrorCode, errorCodes } from '../errors.js';

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
