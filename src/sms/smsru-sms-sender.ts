import { SmsDeliveryError, type SmsSender } from './sms-sender.js';

export interface SmsRuSmsSenderOptions {
  apiId: string;
  /** An approved sender name; the account's default sender when absent. */
  from?: string | undefined;
  /** Base URL of the SMS.ru API; `https://sms.ru` unless a test points it elsewhere. */
  apiUrl: string;
  timeoutMs: number;
}

type SmsRuStatus = { status?: unknown; status_code?: unknown; status_text?: unknown };
type SmsRuAnswer = SmsRuStatus & { sms?: Record<string, SmsRuStatus | undefined> };

/**
 * Sends through the SMS.ru HTTP API: `POST {apiUrl}/sms/send` with a form body of
 * `api_id`, `to` (the number without `+`), `msg`, `json=1` and, if set, `from`.
 * SMS.ru answers HTTP 200 even when it refuses, so a message counts as accepted only
 * when both the request (`status`) and the entry for our number (`sms[to].status`) are
 * "OK".
 */
export class SmsRuSmsSender implements SmsSender {
  readonly name = 'smsru';
  private readonly sendUrl: string;

  constructor(private readonly options: SmsRuSmsSenderOptions) {
    this.sendUrl = `${options.apiUrl.replace(/\/+$/, '')}/sms/send`;
  }

  async send(phoneNumber: string, text: string): Promise<void> {
    const to = phoneNumber.replace(/^\+/, '');
    const form = new URLSearchParams({ api_id: this.options.apiId, to, msg: text, json: '1' });
    if (this.options.from) form.set('from', this.options.from);

    let response: Response;
    let body: string;
    try {
      // POST rather than the documented GET keeps api_id and the code out of URLs, which
      // proxies and access logs record.
      response = await fetch(this.sendUrl, {
        method: 'POST',
        headers: { accept: 'application/json' },
        body: form,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      body = await response.text();
    } catch (error) {
      throw transportError('SMS.ru', error, this.options.timeoutMs);
    }
    if (!response.ok) throw new SmsDeliveryError(`SMS.ru answered HTTP ${response.status}`);

    let answer: SmsRuAnswer;
    try {
      answer = JSON.parse(body) as SmsRuAnswer;
    } catch {
      throw new SmsDeliveryError('SMS.ru answered with something other than JSON');
    }
    // Provider text ends up in logs, which must hold neither the api_id nor the code.
    const secrets = [this.options.apiId, text];
    if (answer?.status !== 'OK') {
      throw new SmsDeliveryError(`SMS.ru refused the request (${describe(answer, secrets)})`);
    }
    const entry = answer.sms?.[to];
    if (entry?.status !== 'OK') {
      const reason = entry ? describe(entry, secrets) : 'no status for this number';
      throw new SmsDeliveryError(`SMS.ru refused the message (${reason})`);
    }
  }
}

function describe(status: SmsRuStatus | null, secrets: string[]): string {
  const code = status?.status_code ?? 'no status_code';
  const text = typeof status?.status_text === 'string' ? `: ${status.status_text}` : '';
  return redact(`${code}${text}`, secrets);
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
