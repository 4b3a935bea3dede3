import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import {
  auth,
  backends,
  createTestApp,
  nextPhone,
  requestCode,
  signIn,
  type TestApp,
} from '../helper.js';

describe.each(backends)('sign-in by phone (%s)', (backend) => {
  let t: TestApp;
  afterEach(async () => {
    await t?.close();
  });

  const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'POST', url, payload: payload as object, headers });

  it('request-code answers the reference shape with dev_code, and sends one SMS', async () => {
    t = await createTestApp({ backend });
    const res = await post('/api/auth/request-code/', { phone_number: '+79991234567' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toEqual({
      success: true,
      message: 'Verification code sent to your phone number.',
      dev_code: expect.stringMatching(/^\d{4}$/),
      retry_after: 60,
    });
    expect(t.sms.sent).toEqual([
      { to: '+79991234567', text: expect.stringContaining(body.dev_code) },
    ]);
  });

  it('normalises national and formatted numbers to one E.164 user', async () => {
    t = await createTestApp({ backend, env: { OTP_RESEND_COOLDOWN_SECONDS: '0' } });
    const first = await signIn(t, '8 (999) 123-45-67');
    expect(first.user.phone_number).toBe('+79991234567');
    const second = await signIn(t, '+7 999 123 45 67');
    expect(second.user.id).toBe(first.user.id);
    expect((second as unknown as { is_new_user: boolean }).is_new_user).toBe(false);
  });

  it('verify-code signs in, creates the user once, and issues a new token each time', async () => {
    t = await createTestApp({ backend, env: { OTP_RESEND_COOLDOWN_SECONDS: '0' } });
    const phone = nextPhone();
    const code = await requestCode(t, phone);
    const res = await post('/api/auth/verify-code/', { phone_number: phone, code });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toEqual({
      token: expect.stringMatching(/^[0-9a-f]{40}$/),
      is_new_user: true,
      user: {
        id: expect.any(Number),
        phone_number: phone,
        invite_code: expect.stringMatching(/^[A-Z0-9]{6}$/),
        activated_invite_code: null,
      },
    });
    const again = await post('/api/auth/verify-code/', {
      phone_number: phone,
      code: await requestCode(t, phone),
    });
    expect(again.json().is_new_user).toBe(false);
    expect(again.json().user).toEqual(body.user);
    expect(again.json().token).not.toBe(body.token);
    // Both tokens work: a new sign-in does not sign out other devices.
    for (const token of [body.token, again.json().token]) {
      const profile = await t.app.inject({
        method: 'GET',
        url: '/api/profile/',
        headers: auth(token),
      });
      expect(profile.statusCode).toBe(200);
    }
  });

  it('accepts form-encoded bodies and paths without the trailing slash', async () => {
    t = await createTestApp({ backend });
    const phone = nextPhone();
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/auth/request-code',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `phone_number=${encodeURIComponent(phone)}`,
    });
    expect(res.statusCode).toBe(200);
    const verify = await t.app.inject({
      method: 'POST',
      url: '/api/auth/verify-code',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `phone_number=${encodeURIComponent(phone)}&code=${res.json().dev_code}`,
    });
    expect(verify.statusCode).toBe(200);
    const profile = await t.app.inject({
      method: 'GET',
      url: '/api/profile',
      headers: auth(verify.json().token),
    });
    expect(profile.statusCode).toBe(200);
  });

  it('rejects invalid phone numbers with invalid_phone and sends nothing', async () => {
    t = await createTestApp({ backend });
    for (const phone_number of [
      '12',
      '+7 999',
      'abc',
      '+1 555 0100',
      '+79991234567890123',
      '+0000000000',
    ]) {
      const res = await post('/api/auth/request-code/', { phone_number });
      expect(res.statusCode, phone_number).toBe(400);
      expect(res.json(), phone_number).toEqual({
        error: 'Enter a valid phone number, e.g. +79991234567.',
        code: 'invalid_phone',
        fields: { phone_number: ['Enter a valid phone number, e.g. +79991234567.'] },
      });
    }
    expect(t.sms.sent).toEqual([]);
  });

  it('a wrong code is a 400 with attempts_left; the code dies after OTP_MAX_ATTEMPTS', async () => {
    t = await createTestApp({ backend });
    const phone = nextPhone();
    const code = await requestCode(t, phone);
    const wrong = code === '0000' ? '1111' : '0000';
    for (let left = 4; left >= 0; left--) {
      const res = await post('/api/auth/verify-code/', { phone_number: phone, code: wrong });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({
        error: 'Invalid verification code.',
        code: 'invalid_code',
        attempts_left: left,
      });
    }
    // Even the right code no longer works.
    const locked = await post('/api/auth/verify-code/', { phone_number: phone, code });
    expect(locked.statusCode).toBe(429);
    expect(locked.json()).toEqual({
      error: 'Too many wrong codes. Request a new code.',
      code: 'too_many_attempts',
      retry_after: expect.any(Number),
    });
    expect(locked.headers['retry-after']).toBe(String(locked.json().retry_after));
    expect(locked.json().retry_after).toBeGreaterThanOrEqual(1);
    expect(locked.json().retry_after).toBeLessThanOrEqual(60);
    // Nor was it used up: later answers do not tell a right guess from a wrong one.
    for (const guess of [code, wrong]) {
      const again = await post('/api/auth/verify-code/', { phone_number: phone, code: guess });
      expect(again.json().code).toBe('too_many_attempts');
    }

    // A new code (after the resend cooldown) gets a fresh set of attempts.
    t.clock.advance(61);
    const fresh = await requestCode(t, phone);
    const ok = await post('/api/auth/verify-code/', { phone_number: phone, code: fresh });
    expect(ok.statusCode).toBe(200);
  });

  it('only the latest code is valid, and a code works once', async () => {
    t = await createTestApp({ backend, env: { OTP_RESEND_COOLDOWN_SECONDS: '0' } });
    const phone = nextPhone();
    let first = await requestCode(t, phone);
    let second = await requestCode(t, phone);
    while (first === second) {
      first = second;
      second = await requestCode(t, phone);
    }
    const stale = await post('/api/auth/verify-code/', { phone_number: phone, code: first });
    expect(stale.statusCode).toBe(400);
    expect(stale.json().code).toBe('invalid_code');
    const ok = await post('/api/auth/verify-code/', { phone_number: phone, code: second });
    expect(ok.statusCode).toBe(200);
    const replay = await post('/api/auth/verify-code/', { phone_number: phone, code: second });
    expect(replay.statusCode).toBe(400);
    expect(replay.json()).toEqual({
      error: 'No valid code for this number. Request a new code.',
      code: 'code_expired',
    });
  });

  it('a code expires after OTP_TTL_SECONDS by the clock', async () => {
    t = await createTestApp({ backend, env: { OTP_TTL_SECONDS: '120' } });
    const phone = nextPhone();
    const code = await requestCode(t, phone);
    t.clock.advance(119);
    const other = nextPhone();
    const otherCode = await requestCode(t, other);
    expect(
      (await post('/api/auth/verify-code/', { phone_number: other, code: otherCode })).statusCode,
    ).toBe(200);
    t.clock.advance(2);
    const res = await post('/api/auth/verify-code/', { phone_number: phone, code });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('code_expired');
  });

  it('verify-code for a number that never asked for a code says code_expired', async () => {
    t = await createTestApp({ backend });
    const res = await post('/api/auth/verify-code/', { phone_number: nextPhone(), code: '1234' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error: 'No valid code for this number. Request a new code.',
      code: 'code_expired',
    });
  });

  it('stores codes only as keyed hashes and tokens only as SHA-256', async () => {
    t = await createTestApp({ backend });
    const phone = nextPhone();
    const code = await requestCode(t, phone);
    const stored = await t.deps.store.get(`otp:{${phone}}`);
    expect(stored).not.toBeNull();
    expect(stored).not.toContain(code);
    const { token } = await signIn(t, nextPhone());
    const rows = (await t.deps.database.db.execute(
      sql`select token_hash from api_tokens`,
    )) as unknown as {
      rows: { token_hash: Uint8Array }[];
    };
    const hashes = rows.rows.map((r) => Buffer.from(r.token_hash).toString('hex'));
    expect(hashes).toContain(createHash('sha256').update(token).digest('hex'));
    expect(JSON.stringify(rows.rows)).not.toContain(token);
  });

  it('production mode never returns dev_code', async () => {
    t = await createTestApp({ backend, env: { NODE_ENV: 'test' } });
    await t.close();
    // Production needs real infrastructure settings to pass validation.
    t = await createTestApp({
      backend,
      env: {
        NODE_ENV: 'production',
        DATABASE_URL: 'postgres://unused@127.0.0.1/unused',
        REDIS_URL: 'redis://127.0.0.1:6379',
        SMS_PROVIDER: 'webhook',
        SMS_WEBHOOK_URL: 'http://127.0.0.1:9/sms',
        SMS_WEBHOOK_SECRET: 'x'.repeat(32),
      },
    });
    const res = await post('/api/auth/request-code/', { phone_number: nextPhone() });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      success: true,
      message: 'Verification code sent to your phone number.',
      retry_after: 60,
    });
  });

  it('answers the same for registered and unknown numbers', async () => {
    t = await createTestApp({ backend });
    const known = await signIn(t);
    const a = await post('/api/auth/request-code/', { phone_number: nextPhone() });
    t.clock.advance(61);
    const b = await post('/api/auth/request-code/', { phone_number: known.user.phone_number });
    expect(Object.keys(a.json())).toEqual(Object.keys(b.json()));
    expect(a.json().message).toBe(b.json().message);
    expect(a.statusCode).toBe(b.statusCode);
  });

  it('a failed SMS delivery is a 502 and leaves no usable code', async () => {
    t = await createTestApp({ backend });
    const phone = nextPhone();
    t.sms.failing = true;
    const res = await post('/api/auth/request-code/', { phone_number: phone });
    expect(res.statusCode).toBe(502);
    expect(res.json()).toEqual({
      error: 'The SMS could not be delivered. Try again later.',
      code: 'sms_delivery_failed',
    });
    expect(await t.deps.store.get(`otp:{${phone}}`)).toBeNull();
  });
});

// The token rules hold both with remembered tokens and on the plain path
// (CACHE_SIZE=0), where the profile read checks the token in its own statement.
const tokenCases = backends.flatMap((backend) => [
  { backend, cache: 'cached', env: {} as Record<string, string> },
  { backend, cache: 'CACHE_SIZE=0', env: { CACHE_SIZE: '0' } },
]);

describe.each(tokenCases)('API tokens ($backend, $cache)', ({ backend, env: cacheEnv }) => {
  let t: TestApp;
  afterEach(async () => {
    await t?.close();
  });
  const profile = (headers: Record<string, string>) =>
    t.app.inject({ method: 'GET', url: '/api/profile/', headers });

  it('requires a token, with the full 401 body', async () => {
    t = await createTestApp({ backend, env: cacheEnv });
    const missing = await profile({});
    expect(missing.statusCode).toBe(401);
    expect(missing.json()).toEqual({
      error: 'Authentication credentials were not provided.',
      code: 'not_authenticated',
    });
    expect(missing.headers['www-authenticate']).toBe('Token');
    for (const header of ['Token nope', `Token ${'a'.repeat(40)}`, 'Basic dXNlcjpwYXNz', 'Token']) {
      const res = await profile({ authorization: header });
      expect(res.statusCode, header).toBe(401);
      expect(res.json(), header).toEqual({
        error: 'Invalid, expired or revoked token.',
        code: 'invalid_token',
      });
    }
  });

  it('accepts Bearer as well as Token', async () => {
    t = await createTestApp({ backend, env: cacheEnv });
    const { token } = await signIn(t);
    expect((await profile({ authorization: `Bearer ${token}` })).statusCode).toBe(200);
    expect((await profile({ authorization: `token ${token}` })).statusCode).toBe(200);
  });

  it('logout revokes only this token; logout-all revokes every token of the user', async () => {
    t = await createTestApp({ backend, env: { ...cacheEnv, OTP_RESEND_COOLDOWN_SECONDS: '0' } });
    const phone = nextPhone();
    const a = await signIn(t, phone);
    const b = await signIn(t, phone);
    const c = await signIn(t, phone);
    const other = await signIn(t);
    const out = await t.app.inject({
      method: 'POST',
      url: '/api/auth/logout/',
      headers: auth(a.token),
    });
    expect(out.statusCode).toBe(200);
    expect(out.json()).toEqual({ success: true });
    expect((await profile(auth(a.token))).statusCode).toBe(401);
    expect((await profile(auth(b.token))).statusCode).toBe(200);
    const all = await t.app.inject({
      method: 'POST',
      url: '/api/auth/logout-all/',
      headers: { ...auth(b.token), 'content-type': 'application/json' },
    });
    expect(all.statusCode).toBe(200);
    expect(all.json()).toEqual({ success: true, revoked: 2 });
    expect((await profile(auth(b.token))).statusCode).toBe(401);
    expect((await profile(auth(c.token))).statusCode).toBe(401);
    expect((await profile(auth(other.token))).statusCode).toBe(200);
    const again = await t.app.inject({
      method: 'POST',
      url: '/api/auth/logout/',
      headers: auth(a.token),
    });
    expect(again.statusCode).toBe(401);
  });

  it('tokens expire after TOKEN_TTL_DAYS by the clock', async () => {
    t = await createTestApp({ backend, env: { ...cacheEnv, TOKEN_TTL_DAYS: '2' } });
    const { token } = await signIn(t);
    t.clock.advance(2 * 86_400 - 10);
    expect((await profile(auth(token))).statusCode).toBe(200);
    t.clock.advance(11);
    const res = await profile(auth(token));
    expect(res.statusCode).toBe(401);
    expect(res.json().code).toBe('invalid_token');
  });

  it('TOKEN_TTL_DAYS=0 means tokens never expire', async () => {
    t = await createTestApp({ backend, env: { ...cacheEnv, TOKEN_TTL_DAYS: '0' } });
    const { token } = await signIn(t);
    t.clock.advance(10 * 365 * 86_400);
    expect((await profile(auth(token))).statusCode).toBe(200);
  });

  it("a blocked user's tokens stop working at once, and they cannot sign in", async () => {
    t = await createTestApp({ backend, env: { ...cacheEnv, OTP_RESEND_COOLDOWN_SECONDS: '0' } });
    const { token, user } = await signIn(t);
    await t.deps.database.db.execute(sql`update users set is_blocked = true where id = ${user.id}`);
    expect((await profile(auth(token))).statusCode).toBe(401);
    const code = await requestCode(t, user.phone_number);
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/auth/verify-code/',
      payload: { phone_number: user.phone_number, code },
    });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toEqual({ error: 'This account is blocked.', code: 'forbidden' });
  });
});
