import { afterEach, describe, expect, it } from 'vitest';
import { backends, createTestApp, type TestApp } from '../helper.js';

/** SPEC 8: which numbers may be sent a code at all (against SMS pumping). */
describe.each(backends)('phone number policy (%s)', (backend) => {
  let t: TestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });
  const requestCode = (app: TestApp, phone_number: string) =>
    app.app.inject({
      method: 'POST',
      url: '/api/auth/request-code/',
      payload: { phone_number },
    });
  const refused = (error: string) => ({
    error,
    code: 'invalid_phone',
    fields: { phone_number: [error] },
  });

  const nonMobile = {
    'RU fixed line': '+74951234567',
    'RU toll-free': '+78001234567',
    'GB premium rate': '+448712345678',
    'US premium rate': '+19005550123',
    'LV fixed line': '+37167123456',
  };

  it('refuses premium-rate, toll-free and fixed-line numbers by default, and sends nothing', async () => {
    t = await createTestApp({ backend });
    for (const [what, phone] of Object.entries(nonMobile)) {
      const res = await requestCode(t, phone);
      expect(res.statusCode, what).toBe(400);
      expect(res.json(), what).toEqual(refused('Codes are sent only to mobile numbers.'));
    }
    // Mobile numbers, and numbers whose ranges do not tell mobile from fixed line (US).
    for (const phone of ['+79991234567', '+12015550123', '+8613800138000']) {
      expect((await requestCode(t, phone)).statusCode, phone).toBe(200);
    }
    expect(t.sms.sent.map((m) => m.to)).toEqual(['+79991234567', '+12015550123', '+8613800138000']);
  });

  it('verify-code applies the same policy', async () => {
    t = await createTestApp({ backend });
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/auth/verify-code/',
      payload: { phone_number: '+448712345678', code: '1234' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(refused('Codes are sent only to mobile numbers.'));
  });

  it('PHONE_ALLOW_NON_MOBILE=true accepts them', async () => {
    t = await createTestApp({ backend, env: { PHONE_ALLOW_NON_MOBILE: 'true' } });
    for (const phone of Object.values(nonMobile)) {
      expect((await requestCode(t, phone)).statusCode, phone).toBe(200);
    }
    expect(t.sms.sent).toHaveLength(Object.keys(nonMobile).length);
  });

  it('PHONE_DENIED_REGIONS refuses those regions, whatever the number type', async () => {
    t = await createTestApp({ backend, env: { PHONE_DENIED_REGIONS: 'kz,GB' } });
    for (const phone of ['+77012345678', '+447700900123', '+447400123456']) {
      const res = await requestCode(t, phone);
      expect(res.statusCode, phone).toBe(400);
      expect(res.json().code, phone).toBe('invalid_phone');
    }
    expect((await requestCode(t, '+77012345678')).json()).toEqual(
      refused('Phone numbers from this region are not supported.'),
    );
    expect((await requestCode(t, '+79991234567')).statusCode).toBe(200);
    expect(t.sms.sent.map((m) => m.to)).toEqual(['+79991234567']);
  });

  it('the deny list applies next to the allow list', async () => {
    t = await createTestApp({
      backend,
      env: { PHONE_ALLOWED_REGIONS: 'RU,BY', PHONE_DENIED_REGIONS: 'KZ' },
    });
    expect((await requestCode(t, '+375291234567')).statusCode).toBe(200);
    expect((await requestCode(t, '+77012345678')).statusCode).toBe(400);
    expect((await requestCode(t, '+12015550123')).statusCode).toBe(400);
  });
});
