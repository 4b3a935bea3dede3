import diagnostics from 'node:diagnostics_channel';
import SwaggerParser from '@apidevtools/swagger-parser';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { errorCodes } from '../../src/errors.js';
import { backends, createTestApp, type TestApp } from '../helper.js';

type JsonSchema = {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  required?: string[];
  properties?: Record<string, JsonSchema>;
};
type Operation = {
  security?: Record<string, string[]>[];
  parameters?: unknown[];
  requestBody?: unknown;
  responses?: Record<
    string,
    {
      description?: string;
      content?: Record<string, { schema?: JsonSchema }>;
      headers?: Record<string, { description?: string; schema?: JsonSchema }>;
    }
  >;
};
type OpenApiDocument = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, JsonSchema>; securitySchemes: Record<string, unknown> };
};

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/**
 * Routes left out of the document on purpose: the document itself, its viewer, the web UI and
 * the admin page, and the Prometheus scrape endpoint (text for Prometheus, not part of the JSON API).
 */
const HIDDEN_ROUTE = /^\/(api\/openapi\.json|api\/docs(\/.*)?|assets\/.*|metrics|admin\/|)$/;

/** The API of SPEC.md section 3, which the document must always describe. */
const SPEC_OPERATIONS = [
  'POST /api/auth/request-code',
  'POST /api/auth/verify-code',
  'GET /api/profile',
  'POST /api/profile',
  'GET /api/profile/referrals',
  'POST /api/auth/logout',
  'POST /api/auth/logout-all',
];
const AUTHENTICATED = new Set(SPEC_OPERATIONS.slice(2));

/** `/api/profile/` and `/api/profile` are one route (ignoreTrailingSlash); `:id` is `{id}`. */
function normalizePath(url: string): string {
  const path = url.replace(/:(\w+)/g, '{$1}');
  return path.length > 1 ? path.replace(/\/$/, '') : path;
}

type CollectedRoute = { method: string; url: string; hidden: boolean };

/**
 * Builds a test app while recording every route it registers, with the schema options the
 * document is made from. buildApp creates its Fastify instance itself, so the onRoute hook is
 * added through the diagnostics channel Fastify publishes each new instance on.
 */
async function createRecordedApp(
  backend: TestApp['backend'],
): Promise<{ t: TestApp; routes: CollectedRoute[] }> {
  const routes: CollectedRoute[] = [];
  const onInstance = (message: unknown) => {
    const { fastify } = message as { fastify: FastifyInstance };
    fastify.addHook('onRoute', (route: RouteOptions) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      const hidden = (route.schema as { hide?: boolean } | undefined)?.hide === true;
      for (const method of methods) routes.push({ method, url: route.url, hidden });
    });
  };
  diagnostics.subscribe('fastify.initialization', onInstance);
  try {
    return { t: await createTestApp({ backend }), routes };
  } finally {
    diagnostics.unsubscribe('fastify.initialization', onInstance);
  }
}

function operationsOf(doc: OpenApiDocument): [string, Operation][] {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => HTTP_METHODS.includes(method))
      .map(([method, operation]): [string, Operation] => [
        `${method.toUpperCase()} ${normalizePath(path)}`,
        operation,
      ]),
  );
}

/** Every string value a schema allows when it is a closed set (enum, const, or unions of them). */
function enumerated(schema: JsonSchema | undefined): unknown[] {
  if (!schema) return [];
  return [
    ...(schema.enum ?? []),
    ...('const' in schema ? [schema.const] : []),
    ...(schema.anyOf ?? []).flatMap(enumerated),
    ...(schema.oneOf ?? []).flatMap(enumerated),
  ];
}

// The first app of a file starts PGlite, which takes seconds on a busy machine.
describe.each(backends)('OpenAPI document and docs page (%s)', { timeout: 120_000 }, (backend) => {
  let t: TestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  async function fetchDocument(app: TestApp['app']): Promise<OpenApiDocument> {
    const res = await app.inject({ method: 'GET', url: '/api/openapi.json' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    return res.json();
  }

  it('is a valid OpenAPI 3.1.0 document with the TokenAuth scheme', async () => {
    t = await createTestApp({ backend });
    const doc = await fetchDocument(t.app);

    expect(doc.openapi).toBe('3.1.0');
    // validate() dereferences in place: give it a copy.
    await expect(SwaggerParser.validate(structuredClone(doc) as never)).resolves.toBeDefined();
    expect(doc.components.securitySchemes.TokenAuth).toEqual({
      type: 'apiKey',
      in: 'header',
      name: 'Authorization',
      description: expect.any(String),
    });
  });

  it('describes every registered route except the hidden ones, and no others', async () => {
    const recorded = await createRecordedApp(backend);
    t = recorded.t;
    const doc = await fetchDocument(t.app);
    // HEAD routes are the ones Fastify adds for each GET; the document leaves them out.
    const routes = recorded.routes.filter((route) => route.method !== 'HEAD');
    expect(routes.length).toBeGreaterThan(0);

    const hidden = routes.filter((route) => route.hidden);
    for (const route of hidden) expect(route.url, 'a hidden route').toMatch(HIDDEN_ROUTE);
    expect(hidden.map((route) => `${route.method} ${route.url}`)).toEqual(
      expect.arrayContaining(['GET /api/openapi.json', 'GET /api/docs/']),
    );

    const documented = operationsOf(doc).map(([key]) => key);
    const visible = routes
      .filter((route) => !route.hidden)
      .map((route) => `${route.method} ${normalizePath(route.url)}`);
    expect([...documented].sort()).toEqual([...new Set(visible)].sort());
    expect(documented).toEqual(expect.arrayContaining(SPEC_OPERATIONS));
  });

  it('declares a response schema for every status of every operation', async () => {
    t = await createTestApp({ backend });
    const doc = await fetchDocument(t.app);
    const operations = operationsOf(doc);
    expect(operations.length).toBeGreaterThanOrEqual(SPEC_OPERATIONS.length);

    for (const [key, operation] of operations) {
      const responses = Object.entries(operation.responses ?? {});
      expect(
        responses.some(([status]) => /^2\d\d$/.test(status)),
        `${key} has a 2xx`,
      ).toBe(true);
      for (const [status, response] of responses) {
        const schema = response.content?.['application/json']?.schema;
        expect(schema, `${key} ${status} has an application/json schema`).toBeTypeOf('object');
        if (/^4\d\d$/.test(status)) {
          expect(schema, `${key} ${status} is the Error body`).toEqual({
            $ref: '#/components/schemas/Error',
          });
        }
      }
      const statuses = responses.map(([status]) => status);
      if (key.includes(' /api/admin/')) {
        expect(operation.security, `${key} requires TokenAuth`).toEqual([{ TokenAuth: [] }]);
        expect(statuses, `${key} declares 401 and 403`).toEqual(
          expect.arrayContaining(['401', '403']),
        );
      } else if (AUTHENTICATED.has(key)) {
        expect(operation.security, `${key} requires TokenAuth`).toEqual([{ TokenAuth: [] }]);
        expect(statuses, `${key} declares 401`).toContain('401');
      } else {
        expect(operation.security ?? [], `${key} needs no token`).toEqual([]);
      }
      if (operation.requestBody !== undefined || (operation.parameters ?? []).length > 0) {
        expect(statuses, `${key} takes input, so declares 400`).toContain('400');
      }
    }
  });

  it('describes every response of every operation in words of its own', async () => {
    t = await createTestApp({ backend });
    const doc = await fetchDocument(t.app);
    const undescribed: string[] = [];
    for (const [key, operation] of operationsOf(doc)) {
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        const description = response.description?.trim() ?? '';
        // "Default Response" is what @fastify/swagger writes when a schema says nothing.
        if (description === '' || description === 'Default Response') {
          undescribed.push(`${key} ${status}`);
        }
      }
    }
    expect(undescribed).toEqual([]);
    const profile = doc.paths['/api/profile/']?.get?.responses ?? {};
    expect(profile['401']?.description).toBe('Missing, unknown, expired or revoked token');
    expect(profile['503']?.description).toMatch(/unreachable/);
    const requestCode = doc.paths['/api/auth/request-code/']?.post?.responses ?? {};
    expect(requestCode['429']?.description).toMatch(/`retry_after`/);
    expect(requestCode['413']?.description).toBe('The request body is over 16 KiB');
  });

  it('declares the RateLimit headers on the answers of the limited routes, and nowhere else', async () => {
    t = await createTestApp({ backend });
    const doc = await fetchDocument(t.app);
    const withHeaders: string[] = [];
    for (const [key, operation] of operationsOf(doc)) {
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        const names = Object.keys(response.headers ?? {});
        if (names.length === 0) continue;
        expect(names.sort(), `${key} ${status}`).toEqual(['RateLimit', 'RateLimit-Policy']);
        for (const header of Object.values(response.headers ?? {})) {
          expect(header.schema?.type).toBe('string');
          expect(header.description).toMatch(/\w/);
        }
        withHeaders.push(`${key} ${status}`);
      }
    }
    expect(withHeaders.sort()).toEqual(
      [
        'POST /api/auth/request-code 200',
        'POST /api/auth/request-code 429',
        'POST /api/auth/request-code 502',
        'POST /api/auth/verify-code 200',
        'POST /api/auth/verify-code 400',
        'POST /api/auth/verify-code 403',
        'POST /api/auth/verify-code 429',
      ].sort(),
    );
    // The body of each answer is still described as before.
    const verify = doc.paths['/api/auth/verify-code/']?.post?.responses ?? {};
    expect(verify['429']?.content?.['application/json']?.schema?.$ref).toMatch(/Error/);
  });

  it('enumerates every error code of src/errors.ts in the Error schema', async () => {
    t = await createTestApp({ backend });
    const doc = await fetchDocument(t.app);
    const error = doc.components.schemas.Error;

    expect(error?.type).toBe('object');
    expect(error?.required).toEqual(expect.arrayContaining(['error', 'code']));
    expect(error?.properties?.error?.type).toBe('string');
    const codes = enumerated(error?.properties?.code);
    expect([...codes].sort()).toEqual([...errorCodes].sort());
    expect(codes).toHaveLength(new Set(codes).size);
  });

  it('serves the docs page with its script from this server, no CDN', async () => {
    t = await createTestApp({ backend });
    const page = await t.app.inject({ method: 'GET', url: '/api/docs/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    // The page shares its origin, and so the web UI's stored token, with `/`: the same headers.
    const csp = String(page.headers['content-security-policy'] ?? '');
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/(^|; )script-src 'self'(;|$)/);
    expect(csp).not.toContain('unsafe-eval');
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(page.headers).toMatchObject({
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'same-origin',
      'cross-origin-opener-policy': 'same-origin',
    });

    const scripts = [...page.body.matchAll(/<script\b[^>]*\bsrc\s*=\s*["']([^"']+)["']/gi)].map(
      (match) => match[1] as string,
    );
    expect(scripts.length).toBeGreaterThan(0);
    // No other origin at all, in any src or href: the page must work offline and behind a CSP.
    const urls = [...page.body.matchAll(/\b(?:src|href|spec-url)\s*=\s*["']([^"']+)["']/gi)].map(
      (match) => match[1] as string,
    );
    for (const url of urls) {
      expect(url, 'same-origin: no scheme, no //host').not.toMatch(/^([a-z][\w+.-]*:|\/\/)/i);
    }

    for (const src of scripts) {
      const resolved = new URL(src, 'http://127.0.0.1/api/docs/');
      const script = await t.app.inject({
        method: 'GET',
        url: `${resolved.pathname}${resolved.search}`,
      });
      expect(script.statusCode, src).toBe(200);
      expect(script.headers['content-type'], src).toMatch(/^(application|text)\/javascript/);
      expect(script.body.length, src).toBeGreaterThan(1000);
      // ReDoc's bundle shows Redocly's logo from their CDN: the served copy must not.
      expect(script.body, src).not.toContain('cdn.redoc.ly');
      expect(script.headers['x-content-type-options'], src).toBe('nosniff');
    }
    const specUrl = /\bspec-url\s*=\s*["']([^"']+)["']/i.exec(page.body)?.[1];
    if (specUrl !== undefined) {
      const spec = await t.app.inject({ method: 'GET', url: specUrl });
      expect(spec.statusCode).toBe(200);
      expect(spec.json().openapi).toBe('3.1.0');
    }
  });
});
