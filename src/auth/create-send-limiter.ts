import type { Deps } from '../deps.js';
import type { SendLimiter } from './send-limiter.js';
import { StoreSendLimiter } from './store-send-limiter.js';

/** The send limits configured for this deployment. */
export function createSendLimiter({ store, clock, config }: Deps): SendLimiter {
  return new StoreSendLimiter(store, clock, {
    resendCooldownSeconds: config.OTP_RESEND_COOLDOWN_SECONDS,
    maxPerPhonePerHour: config.OTP_MAX_PER_PHONE_PER_HOUR,
    maxPerIpPerHour: config.OTP_MAX_PER_IP_PER_HOUR,
    smsMaxPerHour: config.SMS_MAX_PER_HOUR,
    maxVerifyPerIpPerHour: config.OTP_MAX_VERIFY_PER_IP_PER_HOUR,
  });
}
