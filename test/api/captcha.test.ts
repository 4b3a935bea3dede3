import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeSiteverify } from '../fake-siteverify.js';
import { backends, createTestApp, type TestApp } from '../helper.js';

describe.each(backends)('CAPTCHA on request-code (%s)', (backend) => {
  const fake = new FakeSiteverify();
  let t: TestApp | undefined;
  beforeAll(() => fake.start());
  afterAll(() => fake.stop());
  afterEach(async () => {
    await t?.close();
    t = undefined;
    fake.calls.length = 0;
    fake.answer = 'success';
  });

  const withCaptcha = (provider: string, verifyUrl = fake.url) =>
    createTestApp({
      backend,
      env: {
        CAPTCHA_PROVIDER: provider,
        CAPTCHA_SITE_KEY: 'site-key-1',
        CAPTCHA_SECRET: 'captcha-secret-1',
        CAPTCHA_VERIFY_URL: verifyUrl,
      },
    });
  const requestCode = (payload: Record<string, unknown>) =>
    (t as TestApp).app.inject({
      method: 'POST',
      url: '/api/auth/request-code/',
      payload,
      remoteAddress: '203.0.113.9',
    });

  it('without a CAPTCHA configured, none is asked for', async () => {
    t = await createTestApp({ backend });
    const settings = await t.app.inject({ method: 'GET', url: '/api/auth/captcha/' });
    expect(settings.json()).toEqual({ provider: null, site_key: null });
    expect((await requestCode({ phone_number: '+79991234567' })).statusCode).toBe(200);
    expect(fake.calls).toHaveLength(0);
  });

  it.each(['turnstile', 'hcaptcha'])(
    '%s: a solved CAPTCHA lets the code go out',
    async (provider) => {
      t = await withCaptcha(provider);
      const settings = await t.app.inject({ method: 'GET', url: '/api/auth/captcha/' });
      expect(settings.json()).toEqual({ provider, site_key: 'site-key-1' });
      const res = await requestCode({ phone_number: '+79991234567', captcha_token: 'tok-1' });
      expect(res.statusCode).toBe(200);
      expect(fake.calls).toEqual([
        { secret: 'captcha-secret-1', response: 'tok-1', remoteip: '203.0.113.9' },
      ]);
      expect(t.sms.sent).toHaveLength(1);
    },
  );

  it('a missing token is 400 captcha_required, and nothing is sent or asked', async () => {
    t = await withCaptcha('turnstile');
    for (const payload of [
      { phone_number: '+79991234567' },
      { phone_number: '+79991234567', captcha_token: ' ' },
    ]) {
      const res = await requestCode(payload);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({
        error: 'Complete the CAPTCHA first.',
        code: 'captcha_required',
        fields: { captcha_token: ['This field is required.'] },
      });
    }
    expect(fake.calls).toHaveLength(0);
    expect(t.sms.sent).toHaveLength(0);
  });

  it('a token the provider refuses is 400 captcha_invalid', async () => {
    t = await withCaptcha('hcaptcha');
    fake.answer = 'failure';
    const res = await requestCode({ phone_number: '+79991234567', captcha_token: 'forged' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error: 'The CAPTCHA was not solved. Try again.',
      code: 'captcha_invalid',
      fields: { captcha_token: ['The CAPTCHA was not accepted.'] },
    });
    expect(t.sms.sent).toHaveLength(0);
  });

  it.each(['error', 'garbage'] as const)(
    'a provider answering %s fails closed with 503',
    async (answer) => {
      t = await withCaptcha('turnstile');
      fake.answer = answer;
      const res = await requestCode({ phone_number: '+79991234567', captcha_token: 'tok' });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.json()).toEqual({
        error: 'The CAPTCHA check is unavailable. Try again shortly.',
        code: 'captcha_unavailable',
        retry_after: 5,
      });
      expect(t.sms.sent).toHaveLength(0);
    },
  );

  it('an unreachable provider fails closed with 503', async () => {
    // A port nothing listens on: the connection is refused at once.
    const closed = new FakeSiteverify();
    await closed.start();
    const url = closed.url;
    await closed.stop();
    t = await withCaptcha('turnstile', url);
    const res = await requestCode({ phone_number: '+79991234567', captcha_token: 'tok' });
    expect(res.statusCode).toBe(503);
    expect(res.json().code).toBe('captcha_unavailable');
    expect(t.sms.sent).toHaveLength(0);
  });

  it('accepts the token in a form-encoded body too', async () => {
    t = await withCaptcha('turnstile');
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/auth/request-code/',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'phone_number=%2B79991234567&captcha_token=tok-2',
    });
    expect(res.statusCode).toBe(200);
    expect(fake.calls[0]?.response).toBe('tok-2');
  });
});
