/*
 * The CAPTCHA widget of request-code, when the server asks for one (GET /api/auth/captcha/).
 * The provider's script is the one thing the page loads from another host, and only then; the
 * page's Content-Security-Policy names that host only when a provider is configured
 * (src/web/web-routes.ts), so these addresses must match the server's (src/auth/captcha.ts).
 */

/** @typedef {'turnstile' | 'hcaptcha'} Provider */
/**
 * What both providers' scripts define (turnstile.* and hcaptcha.* share these calls).
 * @typedef {{ render(container: HTMLElement, options: Record<string, unknown>): string,
 *   reset(id?: string): void }} ProviderApi
 * @typedef {{ token(): string | null, reset(): void }} Widget
 */

/** @type {Record<Provider, { url: string, global: string }>} */
const scripts = {
  turnstile: {
    url: 'https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit',
    global: 'turnstile',
  },
  hcaptcha: { url: 'https://js.hcaptcha.com/1/api.js?render=explicit', global: 'hcaptcha' },
};

/** @type {Promise<ProviderApi> | null} */
let loading = null;

/**
 * Loads the provider's script once; a failed load may be tried again.
 * @param {Provider} provider
 * @returns {Promise<ProviderApi>}
 */
export function loadProvider(provider) {
  loading ??= new Promise((resolve, reject) => {
    const { url, global } = scripts[provider];
    const script = document.createElement('script');
    script.src = url;
    script.async = true;
    script.addEventListener('load', () => {
      const api = /** @type {any} */ (window)[global];
      if (typeof api?.render === 'function') resolve(api);
      else reject(new Error(`${provider}: the script defined no render()`));
    });
    script.addEventListener('error', () => {
      script.remove();
      loading = null;
      reject(new Error(`${provider}: the script did not load`));
    });
    document.head.append(script);
  });
  return loading;
}

/**
 * Renders a widget into `container`. Its token is what request-code's `captcha_token` carries;
 * a token is good for one check, so the widget is reset after every request that sent one.
 * @param {ProviderApi} api
 * @param {{ provider: Provider, siteKey: string, lang: string, container: HTMLElement }} options
 * @returns {Widget}
 */
export function renderWidget(api, { provider, siteKey, lang, container }) {
  /** @type {string | null} */
  let token = null;
  const forget = () => {
    token = null;
  };
  const id = api.render(container, {
    sitekey: siteKey,
    ...(provider === 'turnstile' ? { language: lang, size: 'flexible' } : { hl: lang }),
    callback: (/** @type {string} */ value) => {
      token = value;
    },
    'expired-callback': forget,
    'error-callback': forget,
  });
  return {
    token: () => token,
    reset() {
      token = null;
      api.reset(id);
    },
  };
}
