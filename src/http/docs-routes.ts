import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FastifyInstance } from 'fastify';

const require = createRequire(import.meta.url);

const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Phone sign-in and referral API</title>
</head>
<body>
  <redoc spec-url="/api/openapi.json"></redoc>
  <script src="/api/docs/redoc.standalone.js"></script>
</body>
</html>`;

/** The OpenAPI document and a ReDoc page, served from the installed package (no CDN). */
let redocBundle: Buffer | undefined;

export async function docsRoutes(app: FastifyInstance): Promise<void> {
  // Read once per process: about 1 MB that never changes while it runs.
  redocBundle ??= readFileSync(require.resolve('redoc/bundles/redoc.standalone.js'));
  const bundle = redocBundle;
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  // Bodies are returned, not the reply: a returned reply is a thenable Fastify waits on.
  app.get('/api/docs/', { schema: { hide: true } }, async (_request, reply) => {
    reply.type('text/html; charset=utf-8');
    return DOCS_HTML;
  });
  app.get('/api/docs/redoc.standalone.js', { schema: { hide: true } }, async (_request, reply) => {
    reply
      .type('application/javascript; charset=utf-8')
      .header('Cache-Control', 'public, max-age=86400');
    return bundle;
  });
}
