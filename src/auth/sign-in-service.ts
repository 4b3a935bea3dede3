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

/** Verify-code as one step: check the code, then find or create the user and store a token. */
export class SignInService {
  constructor(
    private readonly otp: OtpService,
    private readonly users: UserService,
    private readonly sessions: SessionService,
  ) {}

  /** `clientIp` goes into the sign-in's audit entry, written with the token. */
  async signIn(phoneNumber: string, code: string, clientIp: string): Promise<SignInResult> {
    const verified = await this.otp.verify(phoneNumber, code);
    if (!verified.ok) return verified;
    const { token, stored } = this.sessions.newToken();
    const { user, isNew } = await this.users.findOrCreate(phoneNumber, stored, clientIp);
    if (user.isBlocked) return { ok: false, error: 'account_blocked' };
    return {
      ok: true,
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
