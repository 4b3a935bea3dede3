import { LRUCache } from 'lru-cache';
import {
  type AlongsideRevoke,
  hashToken,
  type Session,
  type Sessions,
} from '../auth/session-service.js';
import type { Clock } from '../lib/clock.js';
import { cacheAging } from './cache-aging.js';
import type { RequestVersions } from './request-versions.js';

type Cached = Session & { version: string };

/**
 * Live tokens remembered per instance, keyed by their hash, under the user's
 * version (AccountChanges, read once per request: RequestVersions): a revoked token, a blocked user, a staff change is
 * refused by every instance on its next request. Unknown tokens are never
 * remembered.
 */
export class CachedSessions implements Sessions {
  private readonly cache: LRUCache<string, Cached>;

  constructor(
    private readonly inner: Sessions,
    private readonly versions: RequestVersions,
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
      const version = await this.versions.read(cached.user.id);
      if (version !== null && version === cached.version) return this.confirmed(cached, version);
      this.cache.delete(key);
      return this.checkAndRemember(token, key, version);
    }
    // The user, hence whose version to read, is known only after a first look.
    const found = await this.inner.authenticate(token);
    if (found === null) return null;
    const version = await this.versions.read(found.user.id);
    if (version === null) return this.confirmed(found, version);
    return this.checkAndRemember(token, key, version);
  }

  /** A session of its own for this request, its user confirmed at `version` (RequestVersions). */
  private confirmed(session: Session, version: string | null): Session {
    const user = { ...session.user };
    this.versions.confirm(user, version);
    return { user, expiresAtMs: session.expiresAtMs };
  }

  /** Checks the token again, now that `version` was read first, and remembers it under it. */
  private async checkAndRemember(
    token: string,
    key: string,
    version: string | null,
  ): Promise<Session | null> {
    const found = await this.inner.authenticate(token);
    if (found === null) return null;
    if (version !== null) this.cache.set(key, { ...found, version });
    return this.confirmed(found, version);
  }

  async revoke(token: string, userId: number, alongside?: AlongsideRevoke): Promise<void> {
    this.cache.delete(hashToken(token).toString('base64'));
    await this.inner.revoke(token, userId, alongside);
  }

  revokeAll(userId: number, alongside?: AlongsideRevoke): Promise<number> {
    return this.inner.revokeAll(userId, alongside);
  }
}
