import type { FastifyRequest } from 'fastify';
import { ApiError, fieldMessages } from '../errors.js';
import type { CaptchaVerifier } from './captcha.js';

/** Refuses a request whose body carries no CAPTCHA token the provider accepts. */
export function requireCaptcha(captcha: CaptchaVerifier) {
  return async (request: FastifyRequest): Promise<void> => {
    const token = (request.body as { captcha_token?: string } | undefined)?.captcha_token?.trim();
    if (!token) {
      throw new ApiError('captcha_required', {
        fields: { captcha_token: [fieldMessages.required] },
      });
    }
    const verdict = await captcha.verify(token, request.ip);
    if (verdict === 'invalid') {
      throw new ApiError('captcha_invalid', {
        fields: { captcha_token: [fieldMessages.captchaRefused] },
      });
    }
    // Fail closed: while the provider cannot be asked, no code is sent.
    if (verdict === 'unavailable') {
      throw new ApiError('captcha_unavailable', { retry_after: 5 });
    }
  };
}
