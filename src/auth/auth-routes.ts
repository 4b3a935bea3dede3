import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { AuditLog } from '../audit/audit-log.js';
import { ApiError, fieldMessages } from '../errors.js';
import { setRateLimitHeaders, withRateLimitHeaders } from '../http/rate-limit-headers.js';
import { bodyErrorResponses, errorRef, PhoneNumber, UserSchema } from '../http/schemas.js';
import { maskPhone } from '../ops/mask-phone.js';
import type { Metrics } from '../ops/metrics.js';
import { currentUser, requireUser } from './auth-hook.js';
import type { CaptchaVerifier } from './captcha.js';
import { requireCaptcha } from './captcha-hook.js';
import { DEVICE_ID_RULE, readDeviceId } from './device-id.js';
import type { PhoneResult } from './phone.js';
import type { Sessions } from './session-service.js';
import type { SignInService } from './sign-in-service.js';

export type AuthRoutesOptions = {
  signIns: SignInService;
  sessions: Sessions;
  audit: AuditLog;
  /** Input as typed -> E.164 under the configured regions. */
  normalizePhone: (input: string) => PhoneResult;
  exposeDevCode: boolean;
  resendCooldownSeconds: number;
  /** Required on request-code when configured (CAPTCHA_PROVIDER). */
  captcha: CaptchaVerifier | null;
  metrics: Metrics;
  /** The SMS provider's name, the `provider` label of codes refused before sending. */
  smsProvider: string;
};

function phoneOrThrow(
  input: string,
  normalizePhone: (input: string) => PhoneResult,
): Extract<PhoneResult, { ok: true }> {
  const result = normalizePhone(input);
  if (result.ok) return result;
  const { reason } = result;
  throw new ApiError(
    'invalid_phone',
    { reason },
    { fields: { phone_number: [fieldMessages.phone(reason)] } },
  );
}

function retryAfter(seconds: number): { retry_after: number } {
  return { retry_after: Math.max(1, Math.ceil(seconds)) };
}

export const authRoutes: FastifyPluginAsyncTypebox<AuthRoutesOptions> = async (app, options) => {
  const {
    signIns,
    sessions,
    audit,
    normalizePhone,
    exposeDevCode,
    resendCooldownSeconds,
    captcha,
  } = options;
  const { metrics, smsProvider } = options;

  app.get(
    '/api/auth/captcha/',
    {
      schema: {
        tags: ['auth'],
        summary: 'The CAPTCHA that request-code requires, if any',
        description:
          'Which widget a client shows before requesting a code, and its public site key. Both are null when no CAPTCHA is configured.',
        response: {
          200: Type.Object(
            {
              provider: Type.Union([
                Type.Literal('turnstile'),
                Type.Literal('hcaptcha'),
                Type.Null(),
              ]),
              site_key: Type.Union([Type.String(), Type.Null()]),
            },
            { description: 'The CAPTCHA settings of this deployment' },
          ),
        },
      },
    },
    async () => ({ provider: captcha?.provider ?? null, site_key: captcha?.siteKey ?? null }),
  );

  app.post(
    '/api/auth/request-code/',
    {
      ...(captcha ? { preHandler: requireCaptcha(captcha) } : {}),
      schema: {
        tags: ['auth'],
        summary: 'Send a one-time code to a phone number',
        description:
          'Sends a code by SMS. The answer is the same for registered and new numbers. `dev_code` is present only outside production.',
        body: Type.Object({
          phone_number: PhoneNumber,
          captcha_token: Type.Optional(
            Type.String({
              maxLength: 4096,
              description:
                'The CAPTCHA widget’s token; required when GET /api/auth/captcha/ names a provider',
            }),
          ),
        }),
        response: withRateLimitHeaders(
          {
            200: Type.Object(
              {
                success: Type.Literal(true),
                message: Type.String({
                  examples: ['Verification code sent to your phone number.'],
                }),
                dev_code: Type.Optional(Type.String({ description: 'Only outside production' })),
                retry_after: Type.Integer({
                  description: 'Seconds before a new code may be requested for this number',
                }),
              },
              {
                description:
                  'The code is on its way (the same answer for registered and new numbers)',
              },
            ),
            ...bodyErrorResponses,
            429: errorRef,
            502: errorRef,
            503: errorRef,
          },
          [200, 429, 502],
        ),
      },
    },
    async (request, reply) => {
      const { phoneNumber, region } = phoneOrThrow(request.body.phone_number, normalizePhone);
      const result = await signIns.requestCode(phoneNumber, region, request.ip);
      setRateLimitHeaders(reply, result.limits);
      if (!result.ok) {
        if (result.error === 'rate_limited') {
          metrics.rateLimited.inc({ reason: `send_${result.limit}` });
          metrics.otpCodesSent.inc({ provider: smsProvider, result: 'rate_limited' });
          throw new ApiError(
            'rate_limited',
            { limit: result.limit, retryAfterSeconds: result.retryAfterSeconds },
            retryAfter(result.retryAfterSeconds),
          );
        }
        request.log.warn(
          { to: maskPhone(phoneNumber), provider: smsProvider },
          'SMS delivery failed',
        );
        throw new ApiError('sms_delivery_failed');
      }
      await audit.codeSent(phoneNumber, request.ip, result.withheld);
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
        headers: Type.Object({
          'x-device-id': Type.Optional(
            Type.String({
              description: `The client's device id, a fraud signal (or \`device_id\` in the body): ${DEVICE_ID_RULE}`,
            }),
          ),
        }),
        body: Type.Object({
          phone_number: PhoneNumber,
          code: Type.String({ minLength: 1, maxLength: 16, examples: ['1234'] }),
          device_id: Type.Optional(
            Type.String({
              description: `The client's device id, a fraud signal (or the X-Device-Id header): ${DEVICE_ID_RULE}. A random id the client keeps is enough`,
              examples: ['2f1c9a6e-3b7d-4c1e-9a51-6d0b7e8f4a21'],
            }),
          ),
        }),
        response: withRateLimitHeaders(
          {
            200: Type.Object(
              {
                token: Type.String({ description: 'API token for `Authorization: Token <token>`' }),
                is_new_user: Type.Boolean(),
                user: UserSchema,
              },
              {
                description: 'Signed in: a new token, and the user (created on the first sign-in)',
              },
            ),
            ...bodyErrorResponses,
            403: errorRef,
            429: errorRef,
            503: errorRef,
          },
          [200, 400, 403, 429],
        ),
      },
    },
    async (request, reply) => {
      const { phoneNumber } = phoneOrThrow(request.body.phone_number, normalizePhone);
      const device = readDeviceId(request.headers['x-device-id'], request.body.device_id);
      if (!device.ok) {
        throw new ApiError(
          'validation_error',
          { problem: 'fields' },
          { fields: { [device.field]: [fieldMessages.deviceId(device.problem)] } },
        );
      }
      const code = request.body.code.trim();
      const result = await signIns.signIn(phoneNumber, code, request.ip, device.deviceId);
      metrics.otpVerifications.inc({ result: result.ok ? 'ok' : result.error });
      setRateLimitHeaders(reply, result.limits);
      if (!result.ok) {
        switch (result.error) {
          case 'code_expired':
            throw new ApiError('code_expired');
          case 'invalid_code':
            // Only the guess that voids the code is audited: a flood of wrong guesses writes nothing.
            if (result.attemptsLeft === 0) await audit.codeVoided(phoneNumber, request.ip);
            throw new ApiError('invalid_code', {
              attempts_left: result.attemptsLeft,
            });
          case 'too_many_attempts':
            metrics.rateLimited.inc({ reason: `verify_${result.limit}` });
            throw new ApiError(
              'too_many_attempts',
              { limit: result.limit },
              retryAfter(result.retryAfterSeconds),
            );
          case 'account_blocked':
            throw new ApiError('forbidden', { why: 'blocked' });
        }
      }
      metrics.signIns.inc({ new_user: String(result.isNewUser) });
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
          200: Type.Object(
            { success: Type.Literal(true) },
            { description: 'Signed out: this token no longer works' },
          ),
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
          200: Type.Object(
            { success: Type.Literal(true), revoked: Type.Integer() },
            {
              description: 'Signed out everywhere: `revoked` of this user’s tokens no longer work',
            },
          ),
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
