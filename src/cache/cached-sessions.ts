import { LRUCache } from 'lru-cache';
import type { AccountChanges } from '../accounts/account-changes.js';
import {
  type AlongsideRevoke,
  hashToken,
  type Session,
  type Sessions,
} from '../auth/session-service.js';
import type { Clock } from '../lib/clock.js';
import { cacheAging } from './cache-aging.js';

type Cached = Session & { version: string };

/**
 * Live tokens remembered per instance, keyed by their hash, under the user's
 * version (AccountChanges): a revoked token, a blocked user, a staff change is
 * refused by every instance on its next request. Unknown tokens are never
 * remembered.
 */
export class CachedSessions implements Sessions {
  private readonly cache: LRUCache<string, Cached>;

  constructor(
    private readonly inner: Sessions,
    private readonly changes: AccountChanges,
    private readonly clock: Clock,
    size: number,
  ) {
    this.cache = new LRUCache({ max: size, ...cacheAging(clock) });
  }

  newToken() {
    return this.inner.newToken();
  }

  async authenticate(token: string): Promise<Session | null> {
    const key = hashToken(token).toString('base64');
    const cached = this.cache.get(key);
    if (cached !== undefined) {
      if (cached.expiresAtMs !== null && cached.expiresAtMs <= this.clock.now().getTime()) {
        this.cache.delete(key);
        return null;
      }
      const version = await this.changes.version(cached.user.id);
      if (version !== null && version === cached.version) return cached;
      this.cache.delete(key);
      return this.checkAndRemember(token, key, version);
    }
    // The user, hence whose version to read, is known only after a first look.
    const found = await this.inner.authenticate(token);
    if (found === null) return null;
    const version = await this.changes.version(found.user.id);
    if (version === null) return found;
    return this.checkAndRemember(token, key, version);
  }

  /** Checks the token again, now that `version` was read first, and remembers it under it. */
  private async checkAndRemember(
    token: string,
    key: string,
    version: string | null,
  ): Promise<Session | null> {
    const found = await this.inner.authenticate(token);
    if (found !== null && version !== null) this.cache.set(key, { ...found, version });
    return found;
  }

  async revoke(token: string, userId: number, alongside?: AlongsideRevoke): Promise<void> {
    this.cache.delete(hashToken(token).toString('base64'));
    await this.inner.revoke(token, userId, alongside);
  }

  revokeAll(userId: number, alongside?: AlongsideRevoke): Promise<number> {
    return this.inner.revokeAll(userId, alongside);
  }
}
