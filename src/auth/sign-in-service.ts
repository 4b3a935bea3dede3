import type { ReferralService } from '../referrals/referral-service.js';
import type { OtpService, VerifyResult } from './otp-service.js';
import type { SessionService } from './session-service.js';
import type { UserService } from './user-service.js';

export type SignInUser = {
  id: number;
  phone_number: string;
  invite_code: string;
  activated_invite_code: string | null;
};

export type SignInResult =
  | { ok: true; token: string; isNewUser: boolean; user: SignInUser }
  | Exclude<VerifyResult, { ok: true }>
  | { ok: false; error: 'account_blocked' };

/** Verify-code as one step: check the code, find or create the user, issue a token. */
export class SignInService {
  constructor(
    private readonly otp: OtpService,
    private readonly users: UserService,
    private readonly sessions: SessionService,
    private readonly referrals: ReferralService,
  ) {}

  async signIn(phoneNumber: string, code: string): Promise<SignInResult> {
    const verified = await this.otp.verify(phoneNumber, code);
    if (!verified.ok) return verified;
    const { user, isNew } = await this.users.findOrCreate(phoneNumber);
    if (user.isBlocked) return { ok: false, error: 'account_blocked' };
    const token = await this.sessions.issue(user.id);
    const profile = await this.referrals.getProfile(user.id);
    if (profile === null) throw new Error('user vanished during sign-in');
    return {
      ok: true,
      token,
      isNewUser: isNew,
      user: {
        id: profile.id,
        phone_number: profile.phone_number,
        invite_code: profile.invite_code,
        activated_invite_code: profile.activated_invite_code,
      },
    };
  }
}
