import type { AccountChanges } from '../accounts/account-changes.js';
import type { AuthenticatedUser } from '../auth/session-service.js';

type Confirmed = { version: string | null; writesEnded: number };

/**
 * The user's version read once per request, shared by the token cache and
 * the profile cache: a cached profile request reads the shared store once,
 * not twice, and no version travels through a route or a service signature.
 *
 * The token cache reads the version during the request and confirms it for
 * the user object it answers, a new object per token check, hence per
 * request. The profile cache, given that object, uses the version read for
 * it; so the version it checks was read during this very request, after any
 * change that had answered before the request arrived. A change that ends on
 * this instance since (an activation, then its answer's profile) voids every
 * confirmation: the next read goes to the store again.
 */
export class RequestVersions {
  private readonly confirmed = new WeakMap<AuthenticatedUser, Confirmed>();

  constructor(private readonly changes: AccountChanges) {}

  /** Reads the user's version for a token check (see AccountChanges.version). */
  read(userId: number): Promise<string | null> {
    return this.changes.version(userId);
  }

  /** Remembers `version`, read during this request, for the user object the token check answers. */
  confirm(user: AuthenticatedUser, version: string | null): void {
    this.confirmed.set(user, { version, writesEnded: this.changes.writesEnded });
  }

  /** The version to check a cached read of `user` against (read now when not confirmed). */
  forUser(user: AuthenticatedUser): Promise<string | null> {
    const confirmed = this.confirmed.get(user);
    if (confirmed !== undefined && confirmed.writesEnded === this.changes.writesEnded) {
      return Promise.resolve(confirmed.version);
    }
    return this.changes.version(user.id);
  }
}
