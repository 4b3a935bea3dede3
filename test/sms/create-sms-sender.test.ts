import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { ConsoleSmsSender } from '../../src/sms/console-sms-sender.js';
import { createSmsSender } from '../../src/sms/create-sms-sender.js';
import { SmsRuSmsSender } from '../../src/sms/smsru-sms-sender.js';
import { TwilioSmsSender } from '../../src/sms/twilio-sms-sender.js';
import { WebhookSmsSender } from '../../src/sms/webhook-sms-sender.js';

const logger = pino({ level: 'silent' });

describe('createSmsSender', () => {
  it('chooses the sender named by SMS_PROVIDER', () => {
    const cases = [
      [{ SMS_PROVIDER: 'console' }, ConsoleSmsSender, 'console'],
      [
        {
          SMS_PROVIDER: 'twilio',
          TWILIO_ACCOUNT_SID: 'AC1',
          TWILIO_AUTH_TOKEN: 'token',
          TWILIO_FROM: '+15005550006',
        },
        TwilioSmsSender,
        'twilio',
      ],
      [{ SMS_PROVIDER: 'smsru', SMSRU_API_ID: 'id' }, SmsRuSmsSender, 'smsru'],
      [
        {
          SMS_PROVIDER: 'webhook',
          SMS_WEBHOOK_URL: 'http://127.0.0.1:9/sms',
          SMS_WEBHOOK_SECRET: 'secret',
        },
        WebhookSmsSender,
        'webhook',
      ],
    ] as const;
    for (const [env, type, name] of cases) {
      const sender = createSmsSender(loadConfig(env), logger);
      expect(sender).toBeInstanceOf(type);
      expect(sender.name).toBe(name);
    }
  });

  it('refuses a hand-built config that lacks a provider setting', () => {
    const config = { ...loadConfig({}), SMS_PROVIDER: 'smsru' as const };

    expect(() => createSmsSender(config, logger)).toThrow(
      new ConfigError('SMSRU_API_ID is required when SMS_PROVIDER=smsru'),
    );
  });
});
