import type { Config } from '../config.js';

export type CaptchaVerdict = 'ok' | 'invalid' | 'unavailable';

/** Checks the token a CAPTCHA widget gave the browser. */
export interface CaptchaVerifier {
  readonly provider: CaptchaProvider;
  /** The public key the widget is rendered with. */
  readonly siteKey: string;
  verify(token: string, clientIp: string): Promise<CaptchaVerdict>;
}

export type CaptchaProvider = 'turnstile' | 'hcaptcha';

/** Each provider's server-side check and the script of its widget. */
export const captchaProviders: Record<CaptchaProvider, { verifyUrl: string; scriptUrl: string }> = {
  turnstile: {
    verifyUrl: 'https://challenges.cloudflare.com/turnstile/v0/siteverify',
    scriptUrl: 'https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit',
  },
  hcaptcha: {
    verifyUrl: 'https://api.hcaptcha.com/siteverify',
    scriptUrl: 'https://js.hcaptcha.com/1/api.js?render=explicit',
  },
};

const VERIFY_TIMEOUT_MS = 5000;

/**
 * Turnstile and hCaptcha share one protocol: POST `secret`, `response` and
 * `remoteip` as a form, read `success` from the JSON answer. Anything but a
 * clear answer (a timeout, a 5xx, a body that is not JSON) is `unavailable`:
 * the caller refuses the request, since letting it through while the check is
 * down would switch the defence off exactly when a bot floods it.
 */
export class SiteverifyCaptcha implements CaptchaVerifier {
  constructor(
    readonly provider: CaptchaProvider,
    readonly siteKey: string,
    private readonly secret: string,
    private readonly verifyUrl: string,
  ) {}

  async verify(token: string, clientIp: string): Promise<CaptchaVerdict> {
    let answer: unknown;
    try {
      const response = await fetch(this.verifyUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ secret: this.secret, response: token, remoteip: clientIp }),
        redirect: 'error',
        signal: AbortSignal.timeout(VERIFY_TIMEOUT_MS),
      });
      if (!response.ok) {
        await response.arrayBuffer();
        return 'unavailable';
      }
      answer = await response.json();
    } catch {
      return 'unavailable';
    }
    if (typeof answer !== 'object' || answer === null || !('success' in answer))
      return 'unavailable';
    return answer.success === true ? 'ok' : 'invalid';
  }
}

/** The configured CAPTCHA, or null when request-code needs none. */
export function createCaptchaVerifier(config: Config): CaptchaVerifier | null {
  const provider = config.CAPTCHA_PROVIDER;
  if (provider === 'none' || !config.CAPTCHA_SECRET || !config.CAPTCHA_SITE_KEY) return null;
  return new SiteverifyCaptcha(
    provider,
    config.CAPTCHA_SITE_KEY,
    config.CAPTCHA_SECRET,
    config.CAPTCHA_VERIFY_URL ?? captchaProviders[provider].verifyUrl,
  );
}
