import type { FastifyReply } from 'fastify';
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
