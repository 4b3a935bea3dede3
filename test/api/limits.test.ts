import { afterEach, describe, expect, it } from 'vitest';
import { backends, createTestApp, nextPhone, type TestApp } from '../helper.js';

describe.each(backends)('abuse limits (%s)', (backend) => {
  const apps: TestApp[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0).reverse()) await app.close();
  });
  const make = async (env: Record<string, string>, shareWith?: TestApp) => {
    const t = await createTestApp({ backend, env, shareWith });
    apps.push(t);
    return t;
  };
  const requestCode = (t: TestApp, phone_number: string, ip = '203.0.113.7', headers = {}) =>
    t.app.inject({
      method: 'POST',
      url: '/api/auth/request-code/',
      payload: { phone_number },
      remoteAddress: ip,
      headers,
    });
  const verify = (t: TestApp, phone_number: string, code: string) =>
    t.app.inject({
      method: 'POST',
      url: '/api/auth/verify-code/',
      payload: { phone_number, code },
    });

  const expectLimited = (res: {
    statusCode: number;
    json(): unknown;
    headers: Record<string, unknown>;
  }) => {
    expect(res.statusCode).toBe(429);
    const body = res.json() as { retry_after: number };
    expect(body).toEqual({
      error: 'Too many codes requested. Try again later.',
      code: 'rate_limited',
      retry_after: expect.any(Number),
    });
    expect(res.headers['retry-after']).toBe(String(body.retry_after));
    return body.retry_after;
  };

  it('resend cooldown per number, shared by every way of writing it', async () => {
    const t = await make({ OTP_RESEND_COOLDOWN_SECONDS: '60' });
    expect((await requestCode(t, '+79991112233')).statusCode).toBe(200);
    t.clock.advance(15);
    expect(expectLimited(await requestCode(t, '8 (999) 111-22-33'))).toBe(45);
    t.clock.advance(44);
    expect(expectLimited(await requestCode(t, '+7 999 111 22 33'))).toBe(1);
    t.clock.advance(1);
    expect((await requestCode(t, '89991112233')).statusCode).toBe(200);
    expect(t.sms.sent).toHaveLength(2);
  });

  it('per-number hourly cap', async () => {
    const t = await make({ OTP_RESEND_COOLDOWN_SECONDS: '0', OTP_MAX_PER_PHONE_PER_HOUR: '5' });
    const phone = nextPhone();
    for (let i = 0; i < 5; i++) {
      expect((await requestCode(t, phone)).statusCode).toBe(200);
      t.clock.advance(60);
    }
    const retryAfter = expectLimited(await requestCode(t, phone));
    expect(retryAfter).toBeGreaterThan(0);
    // The sliding-window estimate spreads the previous hour's sends evenly, so a
    // burst at the start of an hour can mean waiting past the hour itself.
    expect(retryAfter).toBeLessThanOrEqual(2 * 3600);
    expect((await requestCode(t, nextPhone())).statusCode).toBe(200);
    // Waiting as told lets the next one through; no double burst at the hour boundary.
    t.clock.advance(retryAfter);
    expect((await requestCode(t, phone)).statusCode).toBe(200);
    expectLimited(await requestCode(t, phone));
    t.clock.advance(2 * 3600);
    for (let i = 0; i < 5; i++) expect((await requestCode(t, phone)).statusCode).toBe(200);
    expectLimited(await requestCode(t, phone));
    expect(t.sms.sent.filter((m) => m.to === phone)).toHaveLength(11);
  });

  it('per-IP hourly cap, with X-Forwarded-For only when TRUST_PROXY is on', async () => {
    const t = await make({ OTP_MAX_PER_IP_PER_HOUR: '3' });
    for (let i = 0; i < 3; i++) {
      expect(
        (await requestCode(t, nextPhone(), '198.51.100.1', { 'x-forwarded-for': `10.0.0.${i}` }))
          .statusCode,
      ).toBe(200);
    }
    expectLimited(
      await requestCode(t, nextPhone(), '198.51.100.1', { 'x-forwarded-for': '10.9.9.9' }),
    );
    expect((await requestCode(t, nextPhone(), '198.51.100.2')).statusCode).toBe(200);
    // One IPv6 client is one /64.
    for (let i = 1; i <= 3; i++)
      expect((await requestCode(t, nextPhone(), `2001:db8:1:2::${i}`)).statusCode).toBe(200);
    expectLimited(await requestCode(t, nextPhone(), '2001:db8:1:2:ffff::9'));

    const proxied = await make({ OTP_MAX_PER_IP_PER_HOUR: '3', TRUST_PROXY: 'true' });
    for (let i = 0; i < 3; i++) {
      expect(
        (await requestCode(proxied, nextPhone(), '127.0.0.1', { 'x-forwarded-for': '192.0.2.50' }))
          .statusCode,
      ).toBe(200);
    }
    expectLimited(
      await requestCode(proxied, nextPhone(), '127.0.0.1', { 'x-forwarded-for': '192.0.2.50' }),
    );
    expect(
      (await requestCode(proxied, nextPhone(), '127.0.0.1', { 'x-forwarded-for': '192.0.2.51' }))
        .statusCode,
    ).toBe(200);
  });

  it('global hourly SMS budget', async () => {
    const t = await make({ SMS_MAX_PER_HOUR: '3', OTP_MAX_PER_PHONE_PER_HOUR: '1' });
    for (let i = 0; i < 3; i++)
      expect((await requestCode(t, nextPhone(), `192.0.2.${i}`)).statusCode).toBe(200);
    expectLimited(await requestCode(t, nextPhone(), '192.0.2.99'));
    expect(t.sms.sent).toHaveLength(3);
    t.clock.advance(2 * 3600);
    expect((await requestCode(t, nextPhone(), '192.0.2.99')).statusCode).toBe(200);
  });

  it('a request refused by one budget costs nothing from the others', async () => {
    const t = await make({ OTP_MAX_PER_IP_PER_HOUR: '1', OTP_MAX_PER_PHONE_PER_HOUR: '1' });
    expect((await requestCode(t, nextPhone(), '192.0.2.1')).statusCode).toBe(200);
    const late = nextPhone();
    // Refused by the per-IP cap, after the number's cooldown and hourly budget were taken...
    expectLimited(await requestCode(t, late, '192.0.2.1'));
    // ...and both given back: the same number from another client goes through at once.
    expect((await requestCode(t, late, '192.0.2.2')).statusCode).toBe(200);
    expect(t.sms.sent).toHaveLength(2);
  });

  it('wrong guesses are capped per number across codes', async () => {
    const t = await make({
      OTP_RESEND_COOLDOWN_SECONDS: '0',
      OTP_MAX_PER_PHONE_PER_HOUR: '0',
      OTP_MAX_FAILED_PER_PHONE_PER_HOUR: '25',
    });
    const phone = nextPhone();
    let wrongAccepted = 0;
    for (let round = 0; round < 8; round++) {
      const code = (await requestCode(t, phone)).json().dev_code as string;
      const wrong = code === '0000' ? '1111' : '0000';
      for (let i = 0; i < 5; i++) {
        const res = await verify(t, phone, wrong);
        if (res.statusCode === 400) wrongAccepted++;
        else {
          expect(res.statusCode).toBe(429);
          expect(res.json().code).toBe('too_many_attempts');
        }
      }
    }
    expect(wrongAccepted).toBe(25);
    // Locked even with the right code until the hour has slid by.
    const code = (await requestCode(t, phone)).json().dev_code as string;
    const locked = await verify(t, phone, code);
    expect(locked.statusCode).toBe(429);
    expect(locked.json().retry_after).toBeGreaterThan(0);
    // A locked number learns nothing more, not even whether that code was right.
    expect((await verify(t, phone, code)).json().code).toBe('too_many_attempts');
    t.clock.advance(2 * 3600);
    const fresh = (await requestCode(t, phone)).json().dev_code as string;
    expect((await verify(t, phone, fresh)).statusCode).toBe(200);
  });

  it('a burst of parallel wrong guesses compares no more than the hourly cap', async () => {
    const t = await make({ OTP_MAX_ATTEMPTS: '100', OTP_MAX_FAILED_PER_PHONE_PER_HOUR: '10' });
    const phone = nextPhone();
    const code = (await requestCode(t, phone)).json().dev_code as string;
    const wrong = Array.from({ length: 30 }, (_, i) => String(i).padStart(4, '0')).filter(
      (c) => c !== code,
    );
    const results = await Promise.all(wrong.map((c) => verify(t, phone, c)));
    expect(results.filter((r) => r.statusCode === 400)).toHaveLength(10);
    const refused = results.filter((r) => r.statusCode !== 400);
    expect(refused).toHaveLength(wrong.length - 10);
    for (const r of refused) expect(r.json().code).toBe('too_many_attempts');
    expect((await verify(t, phone, code)).statusCode).toBe(429);
  });

  it('only wrong guesses at a live code count toward the hourly cap', async () => {
    const t = await make({
      OTP_RESEND_COOLDOWN_SECONDS: '0',
      OTP_MAX_FAILED_PER_PHONE_PER_HOUR: '3',
    });
    const phone = nextPhone();
    // No code yet: nothing to guess at.
    for (let i = 0; i < 5; i++)
      expect((await verify(t, phone, '0000')).json().code).toBe('code_expired');
    let code = (await requestCode(t, phone)).json().dev_code as string;
    const wrongFor = (c: string) => (c === '0000' ? '1111' : '0000');
    expect((await verify(t, phone, wrongFor(code))).statusCode).toBe(400);
    expect((await verify(t, phone, wrongFor(code))).statusCode).toBe(400);
    // The right code is not a wrong guess, and neither is a second use of it.
    expect((await verify(t, phone, code)).statusCode).toBe(200);
    expect((await verify(t, phone, code)).json().code).toBe('code_expired');
    code = (await requestCode(t, phone)).json().dev_code as string;
    expect((await verify(t, phone, wrongFor(code))).statusCode).toBe(400);
    const locked = await verify(t, phone, wrongFor(code));
    expect(locked.statusCode).toBe(429);
    expect(locked.json().code).toBe('too_many_attempts');
  });

  it('PHONE_ALLOWED_REGIONS refuses other regions with invalid_phone and sends nothing', async () => {
    const t = await make({ PHONE_ALLOWED_REGIONS: 'ru,BY' });
    for (const phone of ['+12025550123', '+77012345678', '+380501234567']) {
      const res = await requestCode(t, phone);
      expect(res.statusCode, phone).toBe(400);
      expect(res.json()).toEqual({
        error: 'Phone numbers from this region are not supported.',
        code: 'invalid_phone',
        fields: { phone_number: ['Phone numbers from this region are not supported.'] },
      });
    }
    expect((await requestCode(t, '+375291234567')).statusCode).toBe(200);
    expect((await requestCode(t, '+79991234567')).statusCode).toBe(200);
    expect(t.sms.sent.map((m) => m.to)).toEqual(['+375291234567', '+79991234567']);
  });

  it('TEST_PHONE_NUMBERS: fixed code, no SMS, no send caps', async () => {
    const t = await make({
      TEST_PHONE_NUMBERS: '+79990000001:1234, 8 999 000-00-02:5678',
      SMS_MAX_PER_HOUR: '1',
    });
    for (let i = 0; i < 10; i++) {
      const res = await requestCode(t, '+79990000001');
      expect(res.statusCode).toBe(200);
      expect(res.json().dev_code).toBe('1234');
    }
    expect((await verify(t, '+79990000001', '1234')).statusCode).toBe(200);
    expect((await requestCode(t, '+79990000002')).json().dev_code).toBe('5678');
    expect(t.sms.sent).toEqual([]);
  });

  it('two instances on one store enforce one limit and share codes', async () => {
    const a = await make({ OTP_RESEND_COOLDOWN_SECONDS: '0', OTP_MAX_PER_PHONE_PER_HOUR: '3' });
    const b = await make({ OTP_RESEND_COOLDOWN_SECONDS: '0', OTP_MAX_PER_PHONE_PER_HOUR: '3' }, a);
    const phone = nextPhone();
    expect((await requestCode(a, phone)).statusCode).toBe(200);
    expect((await requestCode(b, phone)).statusCode).toBe(200);
    const code = (await requestCode(a, phone)).json().dev_code as string;
    expectLimited(await requestCode(b, phone));
    expectLimited(await requestCode(a, phone));
    // A code requested through one instance verifies through the other.
    const res = await verify(b, phone, code);
    expect(res.statusCode).toBe(200);
    // A token issued by one instance works on the other, and so does its revocation.
    const headers = { authorization: `Token ${res.json().token}` };
    expect((await a.app.inject({ method: 'GET', url: '/api/profile/', headers })).statusCode).toBe(
      200,
    );
    await b.app.inject({ method: 'POST', url: '/api/auth/logout/', headers });
    expect((await a.app.inject({ method: 'GET', url: '/api/profile/', headers })).statusCode).toBe(
      401,
    );
  });
});
