import type { FastifyReply } from 'fastify';
import Type from 'typebox';
import type { LimitState } from '../auth/send-limiter.js';

/**
 * The limit closest to being hit: the fewest left; of those, the one that
 * takes longest to give one back (on a 429: the refusing one).
 */
export function closestLimit(limits: readonly LimitState[]): LimitState | undefined {
  let closest: LimitState | undefined;
  for (const limit of limits) {
    if (
      closest === undefined ||
      limit.remaining < closest.remaining ||
      (limit.remaining === closest.remaining && limit.resetSeconds > closest.resetSeconds)
    )
      closest = limit;
  }
  return closest;
}

/**
 * The IETF RateLimit-Policy and RateLimit headers
 * (draft-ietf-httpapi-ratelimit-headers, structured fields) of the limit
 * closest to being hit: `"phone";q=5;w=3600` and `"phone";r=2;t=1200`. No
 * headers when no limit was checked.
 */
export function setRateLimitHeaders(reply: FastifyReply, limits: readonly LimitState[]): void {
  const limit = closestLimit(limits);
  if (limit === undefined) return;
  const name = `"${limit.name}"`;
  reply.header('RateLimit-Policy', `${name};q=${limit.quota};w=${limit.windowSeconds}`);
  reply.header('RateLimit', `${name};r=${limit.remaining};t=${limit.resetSeconds}`);
}

/** The two headers as the OpenAPI document declares them. */
const rateLimitHeaderSchemas = {
  'RateLimit-Policy': Type.String({
    description:
      'The limit closest to being hit (draft-ietf-httpapi-ratelimit-headers): its name, quota `q` and window `w` in seconds',
    examples: ['"phone";q=5;w=3600'],
  }),
  RateLimit: Type.String({
    description:
      'What is left of that limit: `r` requests, and `t` seconds until one more comes back (on a 429, `r=0` and `t` equals `retry_after`)',
    examples: ['"phone";r=2;t=1200'],
  }),
};

/**
 * Declares the RateLimit headers on the answers of a limited route given by
 * `statuses`: those its limits were checked for. Answers refused before that
 * (invalid input, a missing CAPTCHA) carry none.
 */
export function withRateLimitHeaders<T extends Record<number, object>>(
  responses: T,
  statuses: readonly number[],
): T {
  const declared: Record<number, object> = { ...responses };
  for (const status of statuses) {
    const response = declared[status];
    if (response) declared[status] = { ...response, headers: rateLimitHeaderSchemas };
  }
  return declared as T;
}
