import { LRUCache } from 'lru-cache';
import type { AuthenticatedUser, Sessions } from '../auth/session-service.js';
import type { Clock } from '../lib/clock.js';
import type { JsonArray } from '../lib/json-array.js';
import type {
  ActivationResult,
  AlongsideActivation,
  OfToken,
  Profile,
  ReferralPage,
  Referrals,
} from '../referrals/referral-service.js';
import { cacheAging } from './cache-aging.js';
import type { RequestVersions } from './request-versions.js';

type Cached<T> = { value: T; version: string };

/** About as many as `referrals` holds (none in `[]`): a referral's JSON and its comma are some 75 bytes. */
function referralsIn(referrals: JsonArray<unknown>): number {
  return Math.round((referrals.json.length - 1) / 75);
}

/**
 * Profiles and referrals pages remembered per instance under the user's
 * version (AccountChanges): a new referral or an activation is seen by every
 * instance on its next request. The version is the one the request's token
 * check read (RequestVersions), before the database, so an entry can only be
 * older than a change that had not answered yet.
 */
export class CachedReferrals implements Referrals {
  private readonly profiles: LRUCache<number, Cached<Profile>>;
  private readonly pages: LRUCache<string, Cached<ReferralPage>>;

  constructor(
    private readonly inner: Referrals,
    /** The cached token check: reads of a token check it here, then read these caches. */
    private readonly sessions: Sessions,
    private readonly versions: RequestVersions,
    clock: Clock,
    size: number,
  ) {
    // Bounded by the referrals held, not the entries: a profile embeds up to 100.
    const maxSize = size * 4;
    const aging = cacheAging(clock);
    this.profiles = new LRUCache({
      maxSize,
      ...aging,
      sizeCalculation: (e) => 1 + referralsIn(e.value.referrals),
    });
    this.pages = new LRUCache({
      maxSize,
      ...aging,
      sizeCalculation: (e) => 1 + referralsIn(e.value.results),
    });
  }

  async getProfileOfToken(token: string): Promise<OfToken<Profile> | null> {
    const session = await this.sessions.authenticate(token);
    if (session === null) return null;
    const profile = await this.getProfile(session.user);
    return profile && { user: session.user, value: profile };
  }

  async listReferralsOfToken(
    token: string,
    afterSeq: number,
    limit: number,
  ): Promise<OfToken<ReferralPage> | null> {
    const session = await this.sessions.authenticate(token);
    if (session === null) return null;
    return { user: session.user, value: await this.listReferrals(session.user, afterSeq, limit) };
  }

  async getProfile(user: AuthenticatedUser): Promise<Profile | null> {
    const version = await this.versions.forUser(user);
    const cached = version === null ? undefined : this.profiles.get(user.id);
    if (cached !== undefined && cached.version === version) return cached.value;
    const profile = await this.inner.getProfile(user);
    if (version !== null && profile !== null) {
      this.profiles.set(user.id, { value: profile, version });
    }
    return profile;
  }

  async listReferrals(
    user: AuthenticatedUser,
    afterSeq: number,
    limit: number,
  ): Promise<ReferralPage> {
    const version = await this.versions.forUser(user);
    const key = `${user.id}:${afterSeq}:${limit}`;
    const cached = version === null ? undefined : this.pages.get(key);
    if (cached !== undefined && cached.version === version) return cached.value;
    const page = await this.inner.listReferrals(user, afterSeq, limit);
    if (version !== null) this.pages.set(key, { value: page, version });
    return page;
  }

  activate(
    userId: number,
    rawCode: string,
    alongside?: AlongsideActivation,
  ): Promise<ActivationResult> {
    return this.inner.activate(userId, rawCode, alongside);
  }
}
