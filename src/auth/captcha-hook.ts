import type { FastifyRequest } from 'fastify';
import { ApiError } from '../errors.js';
import type { CaptchaVerifier } from './captcha.js';

/** Refuses a request whose body carries no CAPTCHA token the provider accepts. */
export function requireCaptcha(captcha: CaptchaVerifier) {
  return async (request: FastifyRequest): Promise<void> => {
    const token = (request.body as { captcha_token?: string } | undefined)?.captcha_token?.trim();
    if (!token) {
      throw new ApiError('captcha_required', 'Complete the CAPTCHA first.', {
        fields: { captcha_token: ['This field is required.'] },
      });
    }
    const verdict = await captcha.verify(token, request.ip);
    if (verdict === 'invalid') {
      throw new ApiError('captcha_invalid', 'The CAPTCHA was not solved. Try again.', {
        fields: { captcha_token: ['The CAPTCHA was not accepted.'] },
      });
    }
    // Fail closed: while the provider cannot be asked, no code is sent.
    if (verdict === 'unavailable') {
      throw new ApiError(
        'captcha_unavailable',
        'The CAPTCHA check is unavailable. Try again shortly.',
        { retry_after: 5 },
      );
    }
  };
}
