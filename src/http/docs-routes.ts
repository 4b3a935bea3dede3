import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FastifyInstance } from 'fastify';
import { securityHeaders } from '../web/web-routes.js';

const require = createRequire(import.meta.url);

const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Phone sign-in and referral API</title>
  <link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">
  <style>body { margin: 0; padding: 0; }</style>
</head>
<body>
  <redoc spec-url="/api/openapi.json"></redoc>
  <script src="/api/docs/redoc.standalone.js"></script>
</body>
</html>`;

/**
 * The docs page shares its origin, and so its localStorage and the API token in it, with the web
 * UI: it gets the same protections. Scripts come only from this server and never from eval.
 * ReDoc styles itself through styled-components, which writes <style> elements at run time,
 * hence 'unsafe-inline' for styles only; its search index runs in a worker made from a blob: URL.
 */
export const docsContentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "worker-src 'self' blob:",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const docsHeaders = { ...securityHeaders, 'content-security-policy': docsContentSecurityPolicy };

/**
 * ReDoc's sidebar footer shows Redocly's logo from their CDN, with no option to turn it off: the
 * page must make no request to another host, so the image is dropped from the bundle (the
 * "API docs by Redocly" link stays). Should a new ReDoc render it differently, the CSP still
 * keeps the browser from fetching it, and the docs test, which watches every request, fails.
 */
function withoutRemoteLogo(bundle: string): string {
  return bundle.replace(
    /\b\w+\?\w+\.createElement\("img",\{alt:"redocly logo",[^}]*src:"https:\/\/cdn\.redoc\.ly\/[^"]*"\}\):null/g,
    'null',
  );
}

/** The OpenAPI document and a ReDoc page, served from the installed package (no CDN). */
let redocBundle: Buffer | undefined;

export async function docsRoutes(app: FastifyInstance): Promise<void> {
  // Read once per process: about 1 MB that never changes while it runs.
  redocBundle ??= Buffer.from(
    withoutRemoteLogo(readFileSync(require.resolve('redoc/bundles/redoc.standalone.js'), 'utf8')),
  );
  const bundle = redocBundle;
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  // Bodies are returned, not the reply: a returned reply is a thenable Fastify waits on.
  app.get('/api/docs/', { schema: { hide: true } }, async (_request, reply) => {
    reply.headers({ ...docsHeaders, 'content-type': 'text/html; charset=utf-8' });
    return DOCS_HTML;
  });
  app.get('/api/docs/redoc.standalone.js', { schema: { hide: true } }, async (_request, reply) => {
    reply.headers({
      ...docsHeaders,
      'content-type': 'application/javascript; charset=utf-8',
      'cache-control': 'public, max-age=86400',
    });
    return bundle;
  });
}
