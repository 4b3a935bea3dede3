import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { AuditLog } from '../audit/audit-log.js';
import { ApiError } from '../errors.js';
import { bodyErrorResponses, errorRef, PhoneNumber, UserSchema } from '../http/schemas.js';
import { currentUser, requireUser } from './auth-hook.js';
import type { OtpService } from './otp-service.js';
import type { PhoneResult } from './phone.js';
import type { SessionService } from './session-service.js';
import type { SignInService } from './sign-in-service.js';

export type AuthRoutesOptions = {
  otp: OtpService;
  signIns: SignInService;
  sessions: SessionService;
  audit: AuditLog;
  /** Input as typed -> E.164 under the configured regions. */
  normalizePhone: (input: string) => PhoneResult;
  exposeDevCode: boolean;
  resendCooldownSeconds: number;
};

function phoneOrThrow(input: string, normalizePhone: (input: string) => PhoneResult): string {
  const result = normalizePhone(input);
  if (result.ok) return result.phoneNumber;
  const message =
    result.reason === 'region_not_allowed'
      ? 'Phone numbers from this region are not supported.'
      : 'Enter a valid phone number, e.g. +79991234567.';
  throw new ApiError('invalid_phone', message, { fields: { phone_number: [message] } });
}

function tooMany(
  code: 'rate_limited' | 'too_many_attempts',
  message: string,
  seconds: number,
): ApiError {
  return new ApiError(code, message, { retry_after: Math.max(1, Math.ceil(seconds)) });
}

export const authRoutes: FastifyPluginAsyncTypebox<AuthRoutesOptions> = async (app, options) => {
  const { otp, signIns, sessions, audit, normalizePhone, exposeDevCode, resendCooldownSeconds } =
    options;

  app.post(
    '/api/auth/request-code/',
    {
      schema: {
        tags: ['auth'],
        summary: 'Send a one-time code to a phone number',
        description:
          'Sends a code by SMS. The answer is the same for registered and new numbers. `dev_code` is present only outside production.',
        body: Type.Object({ phone_number: PhoneNumber }),
        response: {
          200: Type.Object({
            success: Type.Literal(true),
            message: Type.String({ examples: ['Verification code sent to your phone number.'] }),
            dev_code: Type.Optional(Type.String({ description: 'Only outside production' })),
            retry_after: Type.Integer({
              description: 'Seconds before a new code may be requested for this number',
            }),
          }),
          ...bodyErrorResponses,
          429: errorRef,
          502: errorRef,
          503: errorRef,
        },
      },
    },
    async (request) => {
      const phoneNumber = phoneOrThrow(request.body.phone_number, normalizePhone);
      const result = await otp.issue(phoneNumber, request.ip);
      if (!result.ok) {
        if (result.error === 'rate_limited') {
          throw tooMany(
            'rate_limited',
            'Too many codes requested. Try again later.',
            result.retryAfterSeconds,
          );
        }
        throw new ApiError(
          'sms_delivery_failed',
          'The SMS could not be delivered. Try again later.',
        );
      }
      await audit.codeSent(phoneNumber, request.ip);
      return {
        success: true as const,
        message: 'Verification code sent to your phone number.',
        ...(exposeDevCode ? { dev_code: result.code } : {}),
        // The same for every number, so it reveals nothing about who is registered.
        retry_after: resendCooldownSeconds,
      };
    },
  );

  app.post(
    '/api/auth/verify-code/',
    {
      schema: {
        tags: ['auth'],
        summary: 'Check the code and sign in',
        description:
          'Signs in with the code sent to the number, creating the user on the first sign-in. Each sign-in issues a new token.',
        body: Type.Object({
          phone_number: PhoneNumber,
          code: Type.String({ minLength: 1, maxLength: 16, examples: ['1234'] }),
        }),
        response: {
          200: Type.Object({
            token: Type.String({ description: 'API token for `Authorization: Token <token>`' }),
            is_new_user: Type.Boolean(),
            user: UserSchema,
          }),
          ...bodyErrorResponses,
          403: errorRef,
          429: errorRef,
          503: errorRef,
        },
      },
    },
    async (request) => {
      const phoneNumber = phoneOrThrow(request.body.phone_number, normalizePhone);
      const code = request.body.code.trim();
      const result = await signIns.signIn(phoneNumber, code, request.ip);
      if (!result.ok) {
        switch (result.error) {
          case 'code_expired':
            throw new ApiError(
              'code_expired',
              'No valid code for this number. Request a new code.',
            );
          case 'invalid_code':
            // Only the guess that voids the code is audited: a flood of wrong guesses writes nothing.
            if (result.attemptsLeft === 0) await audit.codeVoided(phoneNumber, request.ip);
            throw new ApiError('invalid_code', 'Invalid verification code.', {
              attempts_left: result.attemptsLeft,
            });
          case 'too_many_attempts':
            throw tooMany(
              'too_many_attempts',
              'Too many wrong codes. Request a new code.',
              result.retryAfterSeconds,
            );
          case 'account_blocked':
            throw new ApiError('forbidden', 'This account is blocked.');
        }
      }
      return { token: result.token, is_new_user: result.isNewUser, user: result.user };
    },
  );

  const authenticated = requireUser(sessions);

  app.post(
    '/api/auth/logout/',
    {
      preHandler: authenticated,
      schema: {
        tags: ['auth'],
        summary: 'Sign out: revoke this token',
        security: [{ TokenAuth: [] }],
        response: {
          200: Type.Object({ success: Type.Literal(true) }),
          ...bodyErrorResponses,
          401: errorRef,
          503: errorRef,
        },
      },
    },
    async (request) => {
      const { id } = currentUser(request);
      await sessions.revoke(request.token as string, id, (tx) =>
        audit.byUser(tx, 'logout', id, request.ip),
      );
      return { success: true as const };
    },
  );

  app.post(
    '/api/auth/logout-all/',
    {
      preHandler: authenticated,
      schema: {
        tags: ['auth'],
        summary: 'Sign out everywhere: revoke all of this user’s tokens',
        security: [{ TokenAuth: [] }],
        response: {
          200: Type.Object({ success: Type.Literal(true), revoked: Type.Integer() }),
          ...bodyErrorResponses,
          401: errorRef,
          503: errorRef,
        },
      },
    },
    async (request) => {
      const { id } = currentUser(request);
      const revoked = await sessions.revokeAll(id, (tx, count) =>
        audit.byUser(tx, 'logout_all', id, request.ip, { revoked: count }),
      );
      return { success: true as const, revoked };
    },
  );
};
