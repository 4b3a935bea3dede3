import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { LOG_REDACT } from '../../src/deps.js';
import { maskPhone } from '../../src/ops/mask-phone.js';
import { auth, backends, createTestApp, nextPhone, type TestApp } from '../helper.js';

const SECRET_KEY = 'log-test-secret-key-0123456789abcdef0123';

/** A logger like the service's (createLogger: same redaction), writing into memory. */
function capturedLogger(level: string) {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  const logger = pino({ level, redact: LOG_REDACT }, stream);
  const lines = () =>
    chunks
      .join('')
      .split('\n')
      .filter((line) => line !== '');
  return { logger, lines };
}

describe.each(backends)('request logs (%s)', (backend) => {
  let t: TestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  const post = (url: string, payload: object, headers: Record<string, string> = {}) =>
    (t as TestApp).app.inject({ method: 'POST', url, payload, headers });

  it('at debug: one JSON line per request with its id, and no code, token, key or full number', async () => {
    const { logger, lines } = capturedLogger('debug');
    // 8-digit codes: a 4-digit one could turn up by chance in a timestamp or pid.
    t = await createTestApp({ backend, logger, env: { SECRET_KEY, OTP_LENGTH: '8' } });
    const referrerPhone = nextPhone();
    const refereePhone = nextPhone();
    const before = lines().length;

    const codes: string[] = [];
    const tokens: string[] = [];
    const inviteCodes: string[] = [];
    for (const phone of [referrerPhone, refereePhone]) {
      const sent = await post('/api/auth/request-code/', { phone_number: phone });
      codes.push(sent.json().dev_code);
      const code = codes.at(-1) as string;
      const wrong = code === '00000000' ? '11111111' : '00000000';
      const guess = await post('/api/auth/verify-code/', { phone_number: phone, code: wrong });
      expect(guess.statusCode).toBe(400);
      const signedIn = await post('/api/auth/verify-code/', { phone_number: phone, code });
      expect(signedIn.statusCode).toBe(200);
      tokens.push(signedIn.json().token);
      inviteCodes.push(signedIn.json().user.invite_code);
    }
    const activated = await post(
      '/api/profile/',
      { invite_code: inviteCodes[0] },
      auth(tokens[1] as string),
    );
    expect(activated.statusCode).toBe(200);
    const profile = await t.app.inject({
      method: 'GET',
      url: `/api/profile/?phone=${encodeURIComponent(refereePhone)}`,
      headers: { authorization: `Bearer ${tokens[0]}` },
    });
    expect(profile.statusCode).toBe(200);
    await t.app.inject({ method: 'GET', url: '/no/such/page' });
    const requests = 9;

    const written = lines().slice(before);
    const entries = written.map((line) => JSON.parse(line) as Record<string, unknown>);
    // Everything written while serving requests belongs to one of them.
    for (const entry of entries)
      expect(entry.reqId, JSON.stringify(entry)).toEqual(expect.any(String));
    const requestLines = entries.filter((entry) => entry.msg === 'request');
    expect(requestLines).toHaveLength(requests);
    expect(new Set(requestLines.map((entry) => entry.reqId)).size).toBe(requests);
    expect(entries.map((entry) => entry.msg)).not.toContain('incoming request');
    expect(requestLines[1]).toEqual({
      level: 30,
      time: expect.any(Number),
      pid: process.pid,
      hostname: expect.any(String),
      reqId: expect.any(String),
      method: 'POST',
      route: '/api/auth/verify-code/',
      path: '/api/auth/verify-code/',
      status: 400,
      durationMs: expect.any(Number),
      msg: 'request',
    });
    expect(requestLines.at(-2)).toMatchObject({ route: '/api/profile/', path: '/api/profile/' });
    expect(requestLines.at(-1)).toMatchObject({
      route: 'unmatched',
      path: '/no/such/page',
      status: 404,
    });

    const text = written.join('\n');
    const secrets = {
      code: codes,
      token: tokens,
      SECRET_KEY: [SECRET_KEY],
      'phone number': [referrerPhone, refereePhone, referrerPhone.slice(1), refereePhone.slice(1)],
    };
    for (const [what, values] of Object.entries(secrets)) {
      for (const value of values) {
        expect(value.length, what).toBeGreaterThanOrEqual(8);
        expect(text.includes(value), `a ${what} in the log`).toBe(false);
      }
    }
  });

  it('names a number only masked, when its SMS fails', async () => {
    const { logger, lines } = capturedLogger('info');
    t = await createTestApp({ backend, logger });
    const phone = nextPhone();
    t.sms.failing = true;
    expect((await post('/api/auth/request-code/', { phone_number: phone })).statusCode).toBe(502);
    const entries = lines().map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(entries.find((entry) => entry.msg === 'SMS delivery failed')).toMatchObject({
      level: 40,
      reqId: expect.any(String),
      to: maskPhone(phone),
      provider: 'fake',
    });
    expect(lines().join('\n')).not.toContain(phone.slice(1));
  });
});

describe('maskPhone', () => {
  it('masks a number to its country code, first and last digits', () => {
    expect(maskPhone('+79991234567')).toBe('+7999***4567');
    expect(maskPhone('+3725123456')).toBe('+37***3456');
    expect(maskPhone('+68312345')).toBe('+68***45');
    expect(maskPhone('+6831234')).toBe('+68***34');
    expect(maskPhone('+683123')).toBe('+***');
  });
});
