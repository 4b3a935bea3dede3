import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { type Metrics, UNMATCHED_ROUTE } from './metrics.js';

/** Paths of unmatched requests are whatever a client sent: the log keeps their start. */
const MAX_LOGGED_PATH_LENGTH = 200;

/** The pino levels at which an info line is written. */
const LOGS_INFO = new Set(['trace', 'debug', 'info']);

function pathOf(url: string): string {
  // The query string is left out: it may carry a phone number (admin search) or a cursor.
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  return path.length > MAX_LOGGED_PATH_LENGTH ? `${path.slice(0, MAX_LOGGED_PATH_LENGTH)}…` : path;
}

/**
 * The onResponse hook of every request: counts it and times it by route
 * pattern (never the raw URL, so the label set stays bounded), and writes the
 * request's one log line, in place of Fastify's two (`disableRequestLogging`).
 * A callback hook, not an async one: it runs on every answer and needs no promise.
 */
export function observeRequests(metrics: Metrics) {
  const counts = metrics.requests;
  return (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    const method = request.method;
    const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
    const status = reply.statusCode;
    const durationMs = reply.elapsedTime;
    counts.record(method, route, status, durationMs / 1000);
    // At warn and above (the benchmarks run at warn) the line is not even put together.
    if (LOGS_INFO.has(request.log.level)) {
      request.log.info(
        {
          method,
          route,
          path: pathOf(request.url),
          status,
          durationMs: Math.round(durationMs * 1000) / 1000,
        },
        'request',
      );
    }
    done();
  };
}
