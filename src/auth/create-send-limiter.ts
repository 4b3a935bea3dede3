import type { Deps } from '../deps.js';
import { type SendLimiter, unlimited } from './send-limiter.js';

/** The send and guess limits configured for this deployment. */
export function createSendLimiter(_deps: Deps): SendLimiter {
  return unlimited;
}
