import { createHmac } from 'node:crypto';
import {
  createServer,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SmsDeliveryError, type SmsSender } from '../../src/sms/sms-sender.js';
import { SmsRuSmsSender } from '../../src/sms/smsru-sms-sender.js';
import { TwilioSmsSender } from '../../src/sms/twilio-sms-sender.js';
import { WebhookSmsSender } from '../../src/sms/webhook-sms-sender.js';

// Every request in this file goes to a stub on 127.0.0.1: no traffic leaves the machine.

type Recorded = { method: string; url: string; headers: IncomingHttpHeaders; body: string };
type Stub = { baseUrl: string; requests: Recorded[] };

const servers: Server[] = [];

afterEach(async () => {
  const closing = servers.splice(0).map(
    (server) =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  await Promise.all(closing);
});

/** A local HTTP server that records each request, then lets `answer` respond (or not). */
async function startStub(answer: (request: Recorded, response: ServerResponse) => void) {
  const requests: Recorded[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const recorded: Recorded = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(recorded);
      answer(recorded, res);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { baseUrl: `http://127.0.0.1:${port}`, requests } satisfies Stub;
}

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

/** A base URL on which nothing listens: the port of a server that has just been closed. */
async function refusedBaseUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

async function failure(sending: Promise<void>): Promise<SmsDeliveryError> {
  const error = await sending.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SmsDeliveryError);
  return error as SmsDeliveryError;
}

const PHONE = '+79991234567';
// Cyrillic plus characters that mean something in a form body.
const TEXT = 'Код входа: 1234. Никому не сообщайте его! a+b=c & d';
const SHORT_TIMEOUT_MS = 200;

describe('TwilioSmsSender', () => {
  const ACCOUNT_SID = 'AC0123456789abcdef0123456789abcdef';
  const AUTH_TOKEN = 'twilio-auth-token-0123456789abcdef';

  const sender = (baseUrl: string, from = '+15005550006', timeoutMs = 5000) =>
    new TwilioSmsSender({
      accountSid: ACCOUNT_SID,
      authToken: AUTH_TOKEN,
      from,
      apiUrl: baseUrl,
      timeoutMs,
    });

  it('POSTs the documented form with Basic auth and succeeds on 201', async () => {
    const stub = await startStub((_, res) =>
      json(res, 201, { sid: 'SM0123', status: 'queued', to: PHONE, error_code: null }),
    );

    await sender(stub.baseUrl).send(PHONE, TEXT);

    expect(stub.requests).toHaveLength(1);
    const [request] = stub.requests as [Recorded];
    expect(request.method).toBe('POST');
    expect(request.url).toBe(`/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`);
    const authorization = request.headers.authorization ?? '';
    expect(authorization.startsWith('Basic ')).toBe(true);
    const decoded = Buffer.from(authorization.slice('Basic '.length), 'base64').toString('utf8');
    expect(decoded).toBe(`${ACCOUNT_SID}:${AUTH_TOKEN}`);
    expect(request.headers['content-type']).toBe('application/x-www-form-urlencoded;charset=UTF-8');
    // '+' must travel percent-encoded, or the receiver would decode it as a space.
    expect(request.body).toContain('To=%2B79991234567');
    expect(request.body).toContain('From=%2B15005550006');
    const form = new URLSearchParams(request.body);
    expect([...form.keys()].sort()).toEqual(['Body', 'From', 'To']);
    expect(form.get('To')).toBe(PHONE);
    expect(form.get('From')).toBe('+15005550006');
    expect(form.get('Body')).toBe(TEXT);
  });

  it('sends MessagingServiceSid instead of From when TWILIO_FROM is a service SID', async () => {
    const stub = await startStub((_, res) => json(res, 201, { sid: 'SM0123', status: 'accepted' }));

    await sender(stub.baseUrl, 'MG0123456789abcdef0123456789abcdef').send(PHONE, TEXT);

    const form = new URLSearchParams(stub.requests[0]?.body);
    expect([...form.keys()].sort()).toEqual(['Body', 'MessagingServiceSid', 'To']);
    expect(form.get('MessagingServiceSid')).toBe('MG0123456789abcdef0123456789abcdef');
  });

  it('keeps a path prefix of the API URL', async () => {
    const stub = await startStub((_, res) => json(res, 201, { sid: 'SM0123' }));

    await sender(`${stub.baseUrl}/twilio/`).send(PHONE, TEXT);

    expect(stub.requests[0]?.url).toBe(`/twilio/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`);
  });

  it("reports Twilio's error code and message", async () => {
    const stub = await startStub((_, res) =>
      json(res, 400, {
        code: 21211,
        message: "The 'To' number +7999 is not a valid phone number.",
        more_info: 'https://www.twilio.com/docs/errors/21211',
        status: 400,
      }),
    );

    const error = await failure(sender(stub.baseUrl).send('+7999', TEXT));

    expect(error.message).toBe(
      "Twilio refused the message (HTTP 400, error 21211: The 'To' number +7999 is not a valid phone number.)",
    );
  });

  it('redacts the auth token and the message text if the answer echoes them', async () => {
    const stub = await startStub((_, res) =>
      json(res, 401, { code: 20003, message: `Bad token ${AUTH_TOKEN} for "${TEXT}"` }),
    );

    const error = await failure(sender(stub.baseUrl).send(PHONE, TEXT));

    expect(error.message).toBe(
      'Twilio refused the message (HTTP 401, error 20003: Bad token [redacted] for "[redacted]")',
    );
    expect(error.message).not.toContain(AUTH_TOKEN);
    expect(error.message).not.toContain('1234');
  });

  it('reports only the status of an answer that is not JSON', async () => {
    const stub = await startStub((_, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html>Bad Gateway</html>');
    });

    const error = await failure(sender(stub.baseUrl).send(PHONE, TEXT));

    expect(error.message).toBe('Twilio refused the message (HTTP 502)');
  });

  it('times out when Twilio does not answer', async () => {
    const stub = await startStub(() => {});

    const error = await failure(
      sender(stub.baseUrl, '+15005550006', SHORT_TIMEOUT_MS).send(PHONE, TEXT),
    );

    expect(error.message).toBe(`Twilio request timed out after ${SHORT_TIMEOUT_MS} ms`);
  });

  it('fails when the connection is refused', async () => {
    const error = await failure(sender(await refusedBaseUrl()).send(PHONE, TEXT));

    expect(error.message).toBe('Twilio request failed: ECONNREFUSED');
  });
});

describe('SmsRuSmsSender', () => {
  const API_ID = 'A3CA597E-3ACF-4E7D-82EE-CF82B52B1A8B';
  const TO = '79991234567';

  const sender = (baseUrl: string, from?: string, timeoutMs = 5000) =>
    new SmsRuSmsSender({ apiId: API_ID, from, apiUrl: baseUrl, timeoutMs });

  const accepted = {
    status: 'OK',
    status_code: 100,
    sms: { [TO]: { status: 'OK', status_code: 100, sms_id: '000000-10000000' } },
    balance: 4122.56,
  };

  it('POSTs api_id, to without +, msg, json=1 and from, and succeeds on OK/OK', async () => {
    const stub = await startStub((_, res) => json(res, 200, accepted));

    await sender(stub.baseUrl, 'MyShop').send(PHONE, TEXT);

    expect(stub.requests).toHaveLength(1);
    const [request] = stub.requests as [Recorded];
    expect(request.method).toBe('POST');
    expect(request.url).toBe('/sms/send');
    expect(request.headers['content-type']).toBe('application/x-www-form-urlencoded;charset=UTF-8');
    expect(request.body).toContain(`to=${TO}&`);
    const form = new URLSearchParams(request.body);
    expect([...form.keys()].sort()).toEqual(['api_id', 'from', 'json', 'msg', 'to']);
    expect(form.get('api_id')).toBe(API_ID);
    expect(form.get('to')).toBe(TO);
    expect(form.get('msg')).toBe(TEXT);
    expect(form.get('json')).toBe('1');
    expect(form.get('from')).toBe('MyShop');
  });

  it('leaves out from when no sender name is configured', async () => {
    const stub = await startStub((_, res) => json(res, 200, accepted));

    await sender(stub.baseUrl).send(PHONE, TEXT);

    const form = new URLSearchParams(stub.requests[0]?.body);
    expect([...form.keys()].sort()).toEqual(['api_id', 'json', 'msg', 'to']);
  });

  it('fails when the request as a whole is refused, without the api_id', async () => {
    const stub = await startStub((_, res) =>
      json(res, 200, {
        status: 'ERROR',
        status_code: 200,
        status_text: `Неправильный api_id ${API_ID}`,
      }),
    );

    const error = await failure(sender(stub.baseUrl).send(PHONE, TEXT));

    expect(error.message).toBe('SMS.ru refused the request (200: Неправильный api_id [redacted])');
  });

  it('fails when the entry for the number is an error though the request is OK', async () => {
    const stub = await startStub((_, res) =>
      json(res, 200, {
        status: 'OK',
        status_code: 100,
        sms: {
          [TO]: {
            status: 'ERROR',
            status_code: 207,
            status_text: 'На этот номер нельзя отправлять сообщения',
          },
        },
        balance: 4122.56,
      }),
    );

    const error = await failure(sender(stub.baseUrl).send(PHONE, TEXT));

    expect(error.message).toBe(
      'SMS.ru refused the message (207: На этот номер нельзя отправлять сообщения)',
    );
  });

  it('fails when the answer has no entry for the number', async () => {
    const stub = await startStub((_, res) =>
      json(res, 200, { status: 'OK', status_code: 100, sms: {}, balance: 1 }),
    );

    const error = await failure(sender(stub.baseUrl).send(PHONE, TEXT));

    expect(error.message).toBe('SMS.ru refused the message (no status for this number)');
  });

  it('fails on an HTTP error and on an answer that is not JSON', async () => {
    const broken = await startStub((_, res) => json(res, 503, { status: 'OK' }));
    const html = await startStub((_, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>maintenance</html>');
    });

    expect((await failure(sender(broken.baseUrl).send(PHONE, TEXT))).message).toBe(
      'SMS.ru answered HTTP 503',
    );
    expect((await failure(sender(html.baseUrl).send(PHONE, TEXT))).message).toBe(
      'SMS.ru answered with something other than JSON',
    );
  });

  it('times out when SMS.ru does not answer', async () => {
    const stub = await startStub(() => {});

    const error = await failure(
      sender(stub.baseUrl, undefined, SHORT_TIMEOUT_MS).send(PHONE, TEXT),
    );

    expect(error.message).toBe(`SMS.ru request timed out after ${SHORT_TIMEOUT_MS} ms`);
  });

  it('fails when the connection is refused', async () => {
    const error = await failure(sender(await refusedBaseUrl()).send(PHONE, TEXT));

    expect(error.message).toBe('SMS.ru request failed: ECONNREFUSED');
  });
});

describe('WebhookSmsSender', () => {
  const SECRET = 'webhook-secret-0123456789abcdef';
  const NOW = new Date('2025-03-01T12:34:56.789Z');
  const clock = { now: () => NOW };

  const sender = (url: string, timeoutMs = 5000): SmsSender =>
    new WebhookSmsSender({ url, secret: SECRET, timeoutMs, clock });

  it('POSTs the JSON message with a timestamp and a signature over both', async () => {
    const stub = await startStub((_, res) => {
      res.writeHead(204);
      res.end();
    });

    await sender(`${stub.baseUrl}/hooks/sms?tenant=a%20b`).send(PHONE, TEXT);

    expect(stub.requests).toHaveLength(1);
    const [request] = stub.requests as [Recorded];
    expect(request.method).toBe('POST');
    expect(request.url).toBe('/hooks/sms?tenant=a%20b');
    expect(request.headers['content-type']).toBe('application/json');
    expect(JSON.parse(request.body)).toEqual({
      to: PHONE,
      text: TEXT,
      sent_at: '2025-03-01T12:34:56.789Z',
    });
    const timestamp = request.headers['x-webhook-timestamp'];
    expect(timestamp).toBe(String(Math.floor(NOW.getTime() / 1000)));
    const expected = createHmac('sha256', SECRET)
      .update(`${timestamp}.${request.body}`)
      .digest('hex');
    expect(request.headers['x-webhook-signature']).toBe(`sha256=${expected}`);
  });

  it('fails on a non-2xx answer without quoting its body', async () => {
    const stub = await startStub((request, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`cannot deliver ${request.body} with ${SECRET}`);
    });

    const error = await failure(sender(stub.baseUrl).send(PHONE, TEXT));

    expect(error.message).toBe('SMS webhook answered HTTP 500');
  });

  it('does not follow a redirect to another host', async () => {
    const elsewhere = await startStub((_, res) => json(res, 200, {}));
    const stub = await startStub((_, res) => {
      res.writeHead(307, { location: `${elsewhere.baseUrl}/steal` });
      res.end();
    });

    const error = await failure(sender(stub.baseUrl).send(PHONE, TEXT));

    expect(error.message).toBe('SMS webhook answered HTTP 307');
    expect(elsewhere.requests).toHaveLength(0);
  });

  it('times out when the receiver does not answer', async () => {
    const stub = await startStub(() => {});

    const error = await failure(sender(stub.baseUrl, SHORT_TIMEOUT_MS).send(PHONE, TEXT));

    expect(error.message).toBe(`SMS webhook request timed out after ${SHORT_TIMEOUT_MS} ms`);
  });

  it('fails when the connection is refused', async () => {
    const error = await failure(sender(await refusedBaseUrl()).send(PHONE, TEXT));

    expect(error.message).toBe('SMS webhook request failed: ECONNREFUSED');
  });
});
