import type { IncomingMessage, ServerResponse } from 'node:http';
import AjvCompiler from '@fastify/ajv-compiler';
import cors from '@fastify/cors';
import formbody from '@fastify/formbody';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  LogController,
  type RawServerDefault,
} from 'fastify';
import { adminRoutes } from './admin/admin-routes.js';
import { authRoutes } from './auth/auth-routes.js';
import { phoneNormalizer } from './auth/phone.js';
import type { Config } from './config.js';
import type { Deps } from './deps.js';
import { ApiError } from './errors.js';
import type { WebhookWorker } from './events/webhook-worker.js';
import { docsRoutes } from './http/docs-routes.js';
import {
  clientErrorHandler,
  errorHandler,
  rawErrorAnswer,
  writeErrorResponse,
} from './http/error-handler.js';
import { describeErrorResponses, ErrorSchema } from './http/schemas.js';
import { opsRoutes } from './ops/ops-routes.js';
import { observeRequests } from './ops/request-observer.js';
import { referralRoutes } from './referrals/referral-routes.js';
import { webRoutes } from './web/web-routes.js';

export const BODY_LIMIT_BYTES = 16 * 1024;

export type App = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

export type AppOptions = {
  /**
   * `background` (default): the webhook worker polls from `ready` to `close`.
   * `manual`: it only runs when called (`app.webhooks.runOnce()`), as tests drive it.
   */
  webhookWorker?: 'background' | 'manual';
};

declare module 'fastify' {
  interface FastifyInstance {
    /** Delivers the outbox to WEBHOOK_URLS; null without them. */
    webhooks: WebhookWorker | null;
  }
}

/**
 * A socket with no traffic either way for this long, while a request is read,
 * handled or answered, is closed: longer than any wait of the service itself
 * (the longest is the SMS provider's, SMS_TIMEOUT_MS, at most 60 s), so only a
 * client that stops reading its answer meets it.
 */
const SOCKET_IDLE_TIMEOUT_MS = 120_000;
/** How often Node checks the request timeout (its default, 30 s, would add up to that much). */
const REQUEST_TIMEOUT_CHECK_MS = 1000;

/**
 * Request bodies are validated as sent: a number or an array where the API
 * takes a string is a validation_error, as the reference (DRF) answers and the
 * README says. Query strings are text by nature, so `limit=10` is still read as
 * a number there; form bodies hold strings anyway. Both compilers are Fastify's
 * own, with the same options otherwise (removeAdditional, allErrors).
 */
function buildValidator(): AjvCompiler.BuildCompilerFromPool {
  const fromPool = AjvCompiler();
  return (externalSchemas, options) => {
    const coercing = fromPool(externalSchemas, options);
    // `mode: undefined`: Ajv proper, not its JTD variant (which has no coerceTypes).
    const customOptions = { ...options?.customOptions, coerceTypes: false } as const;
    const strict = fromPool(externalSchemas, { ...options, mode: undefined, customOptions });
    return (route) => (route.httpPart === 'body' ? strict : coercing)(route);
  };
}

/**
 * Fastify's trustProxy for TRUST_PROXY. Fastify refuses a bare hop count
 * (it trusts nothing then), so a count is a function: the socket's peer and
 * the entries the next proxies appended are believed, and the client is the
 * entry before them. Nothing checks who those proxies are: a count is right
 * only when the service cannot be reached except through them.
 */
function trustProxyOption(
  trust: Config['trustProxy'],
): false | string[] | ((address: string, hop: number) => boolean) {
  if (typeof trust !== 'number') return trust;
  const hops = trust;
  return (_address, hop) => hop < hops;
}

export async function buildApp(deps: Deps, options: AppOptions = {}): Promise<App> {
  const { config, logger, random, database, store, metrics } = deps;
  const { sessions, referrals } = deps;
  // The whole request, headers and body, must arrive within this: a client
  // that stalls mid-body (or mid-headers) no longer holds its connection, and
  // a file descriptor, for ever. Bodies are 16 KiB at most.
  const requestTimeoutMs = config.REQUEST_TIMEOUT_SECONDS * 1000;
  const app = Fastify({
    requestTimeout: requestTimeoutMs,
    keepAliveTimeout: config.KEEP_ALIVE_TIMEOUT_SECONDS * 1000,
    connectionTimeout: SOCKET_IDLE_TIMEOUT_MS,
    http: {
      requestTimeout: requestTimeoutMs,
      headersTimeout: requestTimeoutMs,
      connectionsCheckingInterval: REQUEST_TIMEOUT_CHECK_MS,
    },
    loggerInstance: logger as FastifyBaseLogger,
    // One line per request instead of two, written by observeRequests.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    trustProxy: trustProxyOption(config.trustProxy),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    requestIdHeader: 'x-request-id',
    // A per-process random prefix and a counter: unique across instances, and
    // ~250x cheaper per request than drawing random bytes (measured in bench/).
    genReqId: (() => {
      const prefix = random.bytes(4).toString('hex');
      let next = 0;
      return () => `${prefix}-${(next++).toString(36)}`;
    })(),
    // Requests that reach a route while the server drains are served as usual,
    // with Connection: close (below); Fastify's own 503 would not be our body.
    return503OnClosing: false,
    // Protocol-level refusals answer with the standard body too.
    frameworkErrors: errorHandler,
    clientErrorHandler,
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: true, allErrors: true } },
    schemaController: { compilersFactory: { buildValidator: buildValidator() } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Node answers these itself, before any route, unless told otherwise: an
  // Expect other than 100-continue (417), and CONNECT (the socket was dropped).
  app.server.on('checkExpectation', (_request, response) => {
    writeErrorResponse(response, new ApiError('expectation_failed'));
  });
  app.server.on('connect', (_request, socket) => {
    socket.end(rawErrorAnswer(new ApiError('method_not_allowed', { method: 'CONNECT' })));
  });

  // On shutdown, answers still in flight ask their clients to close the
  // connection, so keep-alive sockets do not hold the close open until timeout.
  let shuttingDown = false;
  app.addHook('preClose', async () => {
    shuttingDown = true;
  });
  // With the in-process store most answers are ready in the same turn of the
  // event loop as their request. Written at once, each would wake the client
  // again (over loopback, as from a proxy on the same machine, that wake-up
  // was most of the cost of a wrong-code answer); written together at the end
  // of the turn, they cost about one. With Redis the answers already come
  // together, with its replies, and waiting for the turn's end only costs
  // (bench/README.md, "answers written together").
  const writeAtTurnEnd = store.inProcess;
  // A callback hook, not an async one: it runs on every answer, and needs no promise.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (shuttingDown) reply.header('Connection', 'close');
    if (writeAtTurnEnd) setImmediate(done, null, payload);
    else done(null, payload);
  });

  app.addHook('onResponse', observeRequests(metrics));

  app.decorateRequest('user', null);
  app.decorateRequest('token', null);
  app.setErrorHandler(errorHandler);
  // Methods registered per path, so that a known path with the wrong method
  // gets a 405 with Allow, as DRF answers, rather than a 404.
  const methodsByPath = new Map<string, Set<string>>();
  const pathKey = (url: string) => url.split('?')[0]?.replace(/\/+$/, '') || '/';
  app.addHook('onRoute', (route) => {
    const key = pathKey(route.url);
    const methods = methodsByPath.get(key) ?? new Set<string>();
    for (const method of [route.method].flat()) methods.add(method);
    methodsByPath.set(key, methods);
  });
  app.setNotFoundHandler((request, reply) => {
    const [path = ''] = request.url.split('?');
    const allowed = methodsByPath.get(pathKey(request.url));
    if (allowed && !allowed.has(request.method)) {
      reply.header('Allow', [...allowed].join(', '));
      throw new ApiError('method_not_allowed', { method: request.method, path });
    }
    throw new ApiError('not_found', { method: request.method, path });
  });

  // An empty JSON body (common from clients that always set Content-Type) means "no body".
  // Only JSON and form bodies are part of the API; anything else is a clear 415.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = (body as string).trim();
    if (text === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new ApiError('invalid_json'), undefined);
    }
  });
  await app.register(formbody, { bodyLimit: BODY_LIMIT_BYTES });
  if (config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: config.corsOrigins,
      allowedHeaders: ['Authorization', 'Content-Type'],
    });
  }

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Phone sign-in and referral API',
        version: '1.0.0',
        description:
          'Passwordless sign-in by phone number with one-time codes, and an invite/referral program. ' +
          'Compatible with the Django Referral System API. Errors are `{ "error", "code" }`.',
      },
      components: {
        securitySchemes: {
          TokenAuth: {
            type: 'apiKey',
            in: 'header',
            name: 'Authorization',
            description: '`Token <key>` (or `Bearer <key>`), the key from verify-code',
          },
        },
      },
      tags: [
        { name: 'auth', description: 'Sign in and out' },
        { name: 'profile', description: 'Profile, invite codes and referrals' },
        { name: 'operations', description: 'Health checks' },
        {
          name: 'admin',
          description: 'Staff only: users, blocking, totals, audit log, event log',
        },
      ],
    },
    transform: describeErrorResponses(BODY_LIMIT_BYTES),
    refResolver: {
      buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`),
    },
  });
  app.addSchema(ErrorSchema);

  const phonePolicy = {
    defaultRegion: config.DEFAULT_PHONE_REGION,
    allowedRegions: config.allowedRegions,
    deniedRegions: config.deniedRegions,
    allowNonMobile: config.PHONE_ALLOW_NON_MOBILE,
  };
  const { audit, outbox, eventLog, webhooks } = deps;
  app.decorate('webhooks', webhooks);
  if (webhooks) {
    if (options.webhookWorker !== 'manual') app.addHook('onReady', async () => webhooks.start());
    // Attempts in flight get half the shutdown time to finish, then are
    // released for another instance; the rest is for requests and pools.
    let stopped: Promise<void> | undefined;
    app.addHook('preClose', async () => {
      stopped = webhooks.stop(config.SHUTDOWN_TIMEOUT_SECONDS * 500);
    });
    app.addHook('onClose', async () => {
      await (stopped ?? webhooks.stop(0));
    });
  }

  await app.register(opsRoutes, {
    database,
    store,
    metrics,
    metricsToken: config.METRICS_TOKEN,
  });
  await app.register(authRoutes, {
    signIns: deps.signIns,
    sessions,
    audit,
    normalizePhone: phoneNormalizer(phonePolicy),
    exposeDevCode: config.NODE_ENV !== 'production',
    resendCooldownSeconds: config.OTP_RESEND_COOLDOWN_SECONDS,
    captcha: deps.captcha,
    metrics,
    smsProvider: deps.sms.name,
  });
  await app.register(referralRoutes, { referrals, sessions, metrics, audit, outbox });
  await app.register(adminRoutes, {
    admin: deps.admin,
    audit,
    eventLog,
    sessions,
    normalizePhone: phoneNormalizer({
      defaultRegion: config.DEFAULT_PHONE_REGION,
      allowedRegions: [],
      deniedRegions: [],
      allowNonMobile: true,
    }),
  });
  await app.register(docsRoutes);
  await app.register(webRoutes, { captcha: deps.captcha?.provider ?? null });
  return app;
}
