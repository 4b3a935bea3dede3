import { SmsDeliveryError, type SmsSender } from './sms-sender.js';

export interface TwilioSmsSenderOptions {
  accountSid: string;
  authToken: string;
  /** A sender number in E.164, or the SID of a Messaging Service (`MG…`). */
  from: string;
  /** Base URL of the Twilio REST API; `https://api.twilio.com` unless a test points it elsewhere. */
  apiUrl: string;
  timeoutMs: number;
}

/**
 * Sends through Twilio's Programmable Messaging API:
 * `POST {apiUrl}/2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP Basic auth
 * (AccountSid:AuthToken) and a form body of `To`, `Body` and either `From` or
 * `MessagingServiceSid`. Twilio answers 201 when it has queued the message.
 */
export class TwilioSmsSender implements SmsSender {
  readonly name = 'twilio';
  private readonly messagesUrl: string;
  private readonly authorization: string;

  constructor(private readonly options: TwilioSmsSenderOptions) {
    const base = options.apiUrl.replace(/\/+$/, '');
    const sid = encodeURIComponent(options.accountSid);
    this.messagesUrl = `${base}/2010-04-01/Accounts/${sid}/Messages.json`;
    const credentials = Buffer.from(`${options.accountSid}:${options.authToken}`);
    this.authorization = `Basic ${credentials.toString('base64')}`;
  }

  async send(phoneNumber: string, text: string): Promise<void> {
    const form = new URLSearchParams({ To: phoneNumber, Body: text });
    // A Messaging Service chooses the sender itself (number pool, alphanumeric ID, …).
    if (this.options.from.startsWith('MG')) form.set('MessagingServiceSid', this.options.from);
    else form.set('From', this.options.from);

    let response: Response;
    let body: string;
    try {
      response = await fetch(this.messagesUrl, {
        method: 'POST',
        headers: { authorization: this.authorization, accept: 'application/json' },
        body: form,
        // A redirect would re-send the credentials and the code somewhere we did not choose.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      body = await response.text();
    } catch (error) {
      throw transportError('Twilio', error, this.options.timeoutMs);
    }
    if (response.ok) return;

    let detail = '';
    try {
      const parsed = JSON.parse(body) as { code?: unknown; message?: unknown };
      if (parsed.code !== undefined && parsed.code !== null) detail += `, error ${parsed.code}`;
      if (typeof parsed.message === 'string') detail += `: ${parsed.message}`;
    } catch {
      // A proxy or load balancer error page: the HTTP status is all there is to say.
    }
    // The message ends up in logs, which must hold neither credentials nor the code.
    detail = redact(detail, [this.options.authToken, text]);
    throw new SmsDeliveryError(`Twilio refused the message (HTTP ${response.status}${detail})`);
  }
}

function redact(detail: string, secrets: string[]): string {
  let out = detail;
  for (const secret of secrets) if (secret) out = out.replaceAll(secret, '[redacted]');
  return out.length > 300 ? `${out.slice(0, 300)}…` : out;
}

function transportError(provider: string, error: unknown, timeoutMs: number): SmsDeliveryError {
  if ((error as Error | undefined)?.name === 'TimeoutError') {
    return new SmsDeliveryError(`${provider} request timed out after ${timeoutMs} ms`);
  }
  // Only the system error code: the underlying message may quote the request URL.
  const code = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  const reason = typeof code === 'string' ? code : 'network error';
  return new SmsDeliveryError(`${provider} request failed: ${reason}`);
}
