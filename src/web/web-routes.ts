import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import type { CaptchaProvider } from '../auth/captcha.js';

/** `web/` at the repository root, reached the same way from `src/web/` and from `dist/web/`. */
const webRoot = fileURLToPath(new URL('../../web/', import.meta.url));

/**
 * libphonenumber-js's browser bundle, from the installed package: the page formats numbers for
 * people the way the server parses them, without a build step and without a CDN.
 */
const phoneBundleRoot = join(
  dirname(createRequire(import.meta.url).resolve('libphonenumber-js/package.json')),
  'bundle',
);
const PHONE_BUNDLE = 'libphonenumber-min.js';

/**
 * The page keeps the API token in localStorage, so script injection is the threat that matters:
 * only our own files may run (no inline scripts, no eval, no third-party origins), the page may
 * talk only to its own origin, and it cannot be framed (clickjacking the activate form).
 */
const strictDirectives: Record<string, string> = {
  'default-src': "'none'",
  'script-src': "'self'",
  'style-src': "'self'",
  'img-src': "'self' data:",
  'connect-src': "'self'",
  'manifest-src': "'self'",
  'base-uri': "'none'",
  'form-action': "'self'",
  'frame-ancestors': "'none'",
};

/**
 * What each CAPTCHA widget needs on top, as its provider documents it: Turnstile a script and
 * the frame of its challenge; hCaptcha also styles and requests from its own hosts.
 */
const captchaDirectives: Record<CaptchaProvider, Record<string, string>> = {
  turnstile: {
    'script-src': 'https://challenges.cloudflare.com',
    'frame-src': 'https://challenges.cloudflare.com',
  },
  hcaptcha: {
    'script-src': 'https://hcaptcha.com https://*.hcaptcha.com',
    'frame-src': 'https://hcaptcha.com https://*.hcaptcha.com',
    'style-src': 'https://hcaptcha.com https://*.hcaptcha.com',
    'connect-src': 'https://hcaptcha.com https://*.hcaptcha.com',
  },
};

/**
 * The sign-in page's policy: the strict one, plus exactly the origins of the configured
 * CAPTCHA's widget (its script is the one request the page may make to another host).
 */
export function pageContentSecurityPolicy(captcha: CaptchaProvider | null): string {
  const directives = { ...strictDirectives };
  for (const [name, sources] of Object.entries(captcha ? captchaDirectives[captcha] : {})) {
    directives[name] = directives[name] ? `${directives[name]} ${sources}` : sources;
  }
  return Object.entries(directives)
    .map(([name, sources]) => `${name} ${sources}`)
    .join('; ');
}

export const contentSecurityPolicy = pageContentSecurityPolicy(null);

export const securityHeaders = {
  'content-security-policy': contentSecurityPolicy,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // The share link carries an invite code; do not hand the page address to other sites.
  'referrer-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=()',
};

/**
 * The web UI: `GET /` serves the single page, `GET /admin/` the staff page, `/assets/*` their
 * scripts, styles and icon. `captcha` is the widget the sign-in page may load. The files
 * are not fingerprinted, so they are served with `no-cache`: browsers revalidate with the ETag
 * and get a cheap 304, and a deploy is never hidden behind a stale cache.
 */
export async function webRoutes(
  app: FastifyInstance,
  { captcha }: { captcha: CaptchaProvider | null },
): Promise<void> {
  const page = async (url: string, file: string, csp = contentSecurityPolicy) => {
    const html = await readFile(join(webRoot, file), 'utf8');
    app.get(url, { schema: { hide: true } }, async (_request, reply) => {
      reply.headers({
        ...securityHeaders,
        'content-security-policy': csp,
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-cache',
      });
      return html;
    });
  };
  // Only the sign-in page shows the CAPTCHA; the staff page stays as strict as ever.
  await page('/', 'index.html', pageContentSecurityPolicy(captcha));
  await page('/admin/', 'admin/index.html');

  await app.register(fastifyStatic, {
    root: webRoot,
    prefix: '/assets/',
    schemaHide: true,
    index: false,
    // Leave reply.sendFile free for any other use of @fastify/static in the app.
    decorateReply: false,
    dotfiles: 'deny',
    // Each page has one address, `/` and `/admin/`.
    allowedPath: (pathName) => pathName !== '/index.html' && pathName !== '/admin/index.html',
    cacheControl: false,
    setHeaders(res) {
      for (const [name, value] of Object.entries(securityHeaders)) res.setHeader(name, value);
      res.setHeader('cache-control', 'no-cache');
    },
  });

  await app.register(fastifyStatic, {
    root: phoneBundleRoot,
    prefix: '/assets/vendor/',
    schemaHide: true,
    index: false,
    decorateReply: false,
    allowedPath: (pathName) =>
      pathName === `/${PHONE_BUNDLE}` || pathName === `/${PHONE_BUNDLE}.map`,
    cacheControl: false,
    setHeaders(res) {
      for (const [name, value] of Object.entries(securityHeaders)) res.setHeader(name, value);
      res.setHeader('cache-control', 'no-cache');
    },
  });
}
