import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { Database } from '../db/client.js';
import { ApiError } from '../errors.js';
import type { KeyValueStore } from '../store/key-value-store.js';
import type { Metrics } from './metrics.js';

export type OpsRoutesOptions = {
  database: Database;
  store: KeyValueStore;
  metrics: Metrics;
  /** METRICS_TOKEN: when set, /metrics requires `Authorization: Bearer <token>`. */
  metricsToken: string | undefined;
};

const CHECK_TIMEOUT_MS = 2000;

async function check(probe: () => Promise<void>): Promise<'ok' | 'unavailable'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), CHECK_TIMEOUT_MS);
  });
  try {
    await Promise.race([probe(), timeout]);
    return 'ok';
  } catch {
    return 'unavailable';
  } finally {
    clearTimeout(timer);
  }
}

const BEARER = /^\s*Bearer\s+(\S+)\s*$/i;

const sha256 = (text: string) => createHash('sha256').update(text).digest();

/**
 * Whether the Authorization header carries the expected bearer token. Both
 * sides are hashed first, so the constant-time comparison runs over equal
 * lengths and does not reveal the token's length either.
 */
function bearerMatches(header: string | undefined, expectedDigest: Buffer): boolean {
  const token = header === undefined ? undefined : BEARER.exec(header)?.[1];
  return token !== undefined && timingSafeEqual(sha256(token), expectedDigest);
}

export const opsRoutes: FastifyPluginAsyncTypebox<OpsRoutesOptions> = async (
  app,
  { database, store, metrics, metricsToken },
) => {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['operations'],
        summary: 'Liveness: the process answers',
        response: {
          200: Type.Object({ status: Type.Literal('ok') }, { description: 'The process is up' }),
        },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  const Readiness = Type.Object({
    status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
    database: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
    store: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  });
  app.get(
    '/readyz',
    {
      schema: {
        tags: ['operations'],
        summary: 'Readiness: the database and the store answer',
        response: {
          200: { ...Readiness, description: 'The database and the store answer' },
          503: {
            ...Readiness,
            description: 'Not ready: the body says which of the two does not answer',
          },
        },
      },
    },
    async (_request, reply) => {
      const [db, kv] = await Promise.all([check(() => database.ping()), check(() => store.ping())]);
      const ready = db === 'ok' && kv === 'ok';
      reply.code(ready ? 200 : 503);
      return {
        status: ready ? ('ok' as const) : ('unavailable' as const),
        database: db,
        store: kv,
      };
    },
  );

  // Prometheus text, not JSON: left out of the OpenAPI document, like the document itself.
  const tokenDigest = metricsToken === undefined ? undefined : sha256(metricsToken);
  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    if (tokenDigest !== undefined && !bearerMatches(request.headers.authorization, tokenDigest)) {
      reply.header('WWW-Authenticate', 'Bearer');
      if (!request.headers.authorization?.trim()) throw new ApiError('not_authenticated');
      throw new ApiError('invalid_token', { of: 'metrics' });
    }
    reply.type(metrics.contentType);
    return metrics.text();
  });
};
