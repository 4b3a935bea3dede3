import type { AuthenticatedUser } from '../auth/session-service.js';
import { TurnBatch } from '../lib/turn-batch.js';
import type {
  AlongsideActivation,
  OfToken,
  PageAsk,
  Profile,
  ReferralPage,
  ReferralService,
  Referrals,
} from './referral-service.js';

/**
 * Uncached reads in batches (SIGN_IN_BATCHING, with CACHE_SIZE=0): the
 * profiles asked for in one turn of the event loop are read by one statement
 * (ReferralService.getProfilesOfTokens), and so are the referral pages
 * (listReferralsOfTokens), each token still checked by `live_token_user` in
 * it. Every answer is read from the database after its request arrived, so
 * it is as fresh as the plain read; only the per-statement costs (a round
 * trip, a backend's or PGlite's wake-up) are shared. Everything else goes to
 * the plain service as it is.
 */
export class BatchedReferrals implements Referrals {
  private readonly profiles: TurnBatch<string, OfToken<Profile> | null>;
  private readonly pages: TurnBatch<PageAsk, OfToken<ReferralPage> | null>;

  constructor(private readonly inner: ReferralService) {
    this.profiles = new TurnBatch((tokens) => inner.getProfilesOfTokens(tokens));
    this.pages = new TurnBatch((asks) => inner.listReferralsOfTokens(asks));
  }

  getProfileOfToken(token: string): Promise<OfToken<Profile> | null> {
    return this.profiles.add(token);
  }

  getProfile(user: AuthenticatedUser): Promise<Profile | null> {
    return this.inner.getProfile(user);
  }

  listReferrals(user: AuthenticatedUser, afterSeq: number, limit: number): Promise<ReferralPage> {
    return this.inner.listReferrals(user, afterSeq, limit);
  }

  listReferralsOfToken(
    token: string,
    afterSeq: number,
    limit: number,
  ): Promise<OfToken<ReferralPage> | null> {
    return this.pages.add({ token, afterSeq, limit });
  }

  activate(userId: number, rawCode: string, alongside?: AlongsideActivation) {
    return this.inner.activate(userId, rawCode, alongside);
  }
}
