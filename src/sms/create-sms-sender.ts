import type { Logger } from 'pino';
import { type Config, ConfigError } from '../config.js';
import { type Clock, systemClock } from '../lib/clock.js';
import { ConsoleSmsSender } from './console-sms-sender.js';
import type { SmsSender } from './sms-sender.js';
import { SmsRuSmsSender } from './smsru-sms-sender.js';
import { TwilioSmsSender } from './twilio-sms-sender.js';
import { WebhookSmsSender } from './webhook-sms-sender.js';

/** The one place that turns SMS_PROVIDER into a sender. */
export function createSmsSender(
  config: Config,
  logger: Logger,
  clock: Clock = systemClock,
): SmsSender {
  const timeoutMs = config.SMS_TIMEOUT_MS;
  switch (config.SMS_PROVIDER) {
    case 'console':
      return new ConsoleSmsSender(logger, config.SMS_CONSOLE_DELAY_MS);
    case 'twilio':
      return new TwilioSmsSender({
        accountSid: required(config.TWILIO_ACCOUNT_SID, 'TWILIO_ACCOUNT_SID', 'twilio'),
        authToken: required(config.TWILIO_AUTH_TOKEN, 'TWILIO_AUTH_TOKEN', 'twilio'),
        from: required(config.TWILIO_FROM, 'TWILIO_FROM', 'twilio'),
        apiUrl: config.TWILIO_API_URL,
        timeoutMs,
      });
    case 'smsru':
      return new SmsRuSmsSender({
        apiId: required(config.SMSRU_API_ID, 'SMSRU_API_ID', 'smsru'),
        from: config.SMSRU_FROM,
        apiUrl: config.SMSRU_API_URL,
        timeoutMs,
      });
    case 'webhook':
      return new WebhookSmsSender({
        url: required(config.SMS_WEBHOOK_URL, 'SMS_WEBHOOK_URL', 'webhook'),
        secret: required(config.SMS_WEBHOOK_SECRET, 'SMS_WEBHOOK_SECRET', 'webhook'),
        timeoutMs,
        clock,
      });
  }
}

// loadConfig already refuses these gaps; this guards a Config assembled by hand.
function required(value: string | undefined, name: string, provider: string): string {
  if (value === undefined)
    throw new ConfigError(`${name} is required when SMS_PROVIDER=${provider}`);
  return value;
}
