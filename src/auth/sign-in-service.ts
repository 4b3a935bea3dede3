import type { IssueResult, OtpService, VerifyResult } from './otp-service.js';
import type { LimitState } from './send-limiter.js';
import type { Sessions } from './session-service.js';
import type { Users } from './user-service.js';

export type SignInUser = {
  id: number;
  phone_number: string;
  invite_code: string;
  activated_invite_code: string | null;
};

/** With the limits verification checked, as VerifyResult. */
export type SignInResult =
  | { ok: true; token: string; isNewUser: boolean; user: SignInUser; limits: LimitState[] }
  | Exclude<VerifyResult, { ok: true }>
  | { ok: false; error: 'account_blocked'; limits: LimitState[] };

/**
 * Request-code and verify-code as one step each: a code for a number (sent
 * unless its user is blocked), and signing in with it (check the code, then
 * find or create the user and store a token).
 */
export class SignInService {
  constructor(
    private readonly otp: OtpService,
    private readonly users: Users,
    private readonly sessions: Sessions,
  ) {}

  /** `region`: the number's ISO region, for the per-region SMS budget. */
  requestCode(
    phoneNumber: string,
    region: string | undefined,
    clientIp: string,
  ): Promise<IssueResult> {
    return this.otp.issue(phoneNumber, region, clientIp, () => this.users.isBlocked(phoneNumber));
  }

  /** `clientIp` goes into the sign-in's audit entry, written with the token. */
  async signIn(phoneNumber: string, code: string, clientIp: string): Promise<SignInResult> {
    const verified = await this.otp.verify(phoneNumber, code, clientIp);
    if (!verified.ok) return verified;
    const { token, stored } = this.sessions.newToken();
    // A withheld code was issued while the account was blocked and never sent:
    // it stores no token, and never signs in, not even once unblocked.
    const { user, isNew } = await this.users.findOrCreate(
      phoneNumber,
      verified.withheld ? null : stored,
      clientIp,
    );
    const { limits } = verified;
    if (user.isBlocked) return { ok: false, error: 'account_blocked', limits };
    if (verified.withheld) return { ok: false, error: 'code_expired', limits };
    return {
      ok: true,
      limits,
      token,
      isNewUser: isNew,
      user: {
        id: user.id,
        phone_number: user.phoneNumber,
        invite_code: user.inviteCode,
        activated_invite_code: user.activatedInviteCode,
      },
    };
  }
}
