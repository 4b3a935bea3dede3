import { createHmac } from 'node:crypto';
import { type Clock, systemClock } from '../lib/clock.js';
import { SmsDeliveryError, type SmsSender } from './sms-sender.js';

export interface WebhookSmsSenderOptions {
  url: string;
  /** HMAC-SHA256 key shared with the receiver. */
  secret: string;
  timeoutMs: number;
  clock?: Clock;
}

/**
 * Hands each message to an HTTP endpoint the operator runs (an in-house gateway, a
 * bridge to another provider). The request is
 *
 *     POST {url}
 *     Content-Type: application/json
 *     X-Webhook-Timestamp: <unix seconds>
 *     X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
 *
 *     {"to":"+79991234567","text":"…","sent_at":"2025-01-01T12:00:00.000Z"}
 *
 * The receiver should recompute the HMAC over the exact bytes it received, compare it in
 * constant time, and reject a timestamp more than a few minutes old: the timestamp is
 * signed together with the body so that a captured request cannot be replayed later.
 * Any 2xx answer means the message was accepted.
 */
export class WebhookSmsSender implements SmsSender {
  readonly name = 'webhook';
  private readonly clock: Clock;

  constructor(private readonly options: WebhookSmsSenderOptions) {
    this.clock = options.clock ?? systemClock;
  }

  async send(phoneNumber: string, text: string): Promise<void> {
    const now = this.clock.now();
    const timestamp = String(Math.floor(now.getTime() / 1000));
    const body = JSON.stringify({ to: phoneNumber, text, sent_at: now.toISOString() });
    const signature = createHmac('sha256', this.options.secret)
      .update(`${timestamp}.${body}`)
      .digest('hex');

    let response: Response;
    try {
      response = await fetch(this.options.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-webhook-timestamp': timestamp,
          'x-webhook-signature': `sha256=${signature}`,
        },
        body,
        // A redirect would re-send the code to a host the operator did not configure.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      await response.arrayBuffer();
    } catch (error) {
      throw transportError(error, this.options.timeoutMs);
    }
    // The answer's body is not quoted: the receiver may echo the message, code included.
    if (!response.ok) throw new SmsDeliveryError(`SMS webhook answered HTTP ${response.status}`);
  }
}

function transportError(error: unknown, timeoutMs: number): SmsDeliveryError {
  if ((error as Error | undefined)?.name === 'TimeoutError') {
    return new SmsDeliveryError(`SMS webhook request timed out after ${timeoutMs} ms`);
  }
  // Only the system error code: the underlying message may quote the URL, which can
  // carry a token.
  const code = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  const reason = typeof code === 'string' ? code : 'network error';
  return new SmsDeliveryError(`SMS webhook request failed: ${reason}`);
}
