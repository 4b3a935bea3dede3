import type { SmsSender } from '../sms/sms-sender.js';
import type { Metrics } from './metrics.js';

/**
 * Counts every message handed to the provider, as `otp_codes_sent_total`:
 * `sent` when it accepted the message, `failed` when it did not. Counted here,
 * around the provider, so that fixed test codes (no SMS) never count as spend.
 */
export function meteredSmsSender(sms: SmsSender, metrics: Metrics): SmsSender {
  const sent = metrics.otpCodesSent.labels({ provider: sms.name, result: 'sent' });
  const failed = metrics.otpCodesSent.labels({ provider: sms.name, result: 'failed' });
  return {
    name: sms.name,
    async send(phoneNumber, text) {
      try {
        await sms.send(phoneNumber, text);
      } catch (error) {
        failed.inc();
        throw error;
      }
      sent.inc();
    },
  };
}
