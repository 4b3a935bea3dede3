import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { Database } from '../db/client.js';
import type { KeyValueStore } from '../store/key-value-store.js';

export type OpsRoutesOptions = { database: Database; store: KeyValueStore };

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

export const opsRoutes: FastifyPluginAsyncTypebox<OpsRoutesOptions> = async (
  app,
  { database, store },
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
};
