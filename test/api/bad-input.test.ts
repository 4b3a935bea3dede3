import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, backends, createTestApp, type SignedIn, signIn, type TestApp } from '../helper.js';

/**
 * Hostile and careless input: every answer is a 4xx with the standard error
 * body, never a 500. One app serves the whole file (nothing here changes state
 * that another case depends on).
 */
describe.each(backends)('bad input (%s)', (backend) => {
  let t: TestApp;
  let user: SignedIn;
  beforeAll(async () => {
    t = await createTestApp({
      backend,
      env: { OTP_MAX_PER_PHONE_PER_HOUR: '0', OTP_RESEND_COOLDOWN_SECONDS: '0' },
    });
    user = await signIn(t);
  });
  afterAll(async () => {
    await t?.close();
  });

  type Case = {
    name: string;
    url: string;
    payload?: string;
    contentType?: string;
    status: number;
    code: string;
  };
  const json = 'application/json';
  const cases: Case[] = [
    {
      name: 'malformed JSON',
      url: '/api/auth/request-code/',
      payload: '{"phone_number":',
      contentType: json,
      status: 400,
      code: 'invalid_json',
    },
    {
      name: 'JSON array',
      url: '/api/auth/request-code/',
      payload: '["+79991234567"]',
      contentType: json,
      status: 400,
      code: 'validation_error',
    },
    {
      name: 'JSON string',
      url: '/api/auth/request-code/',
      payload: '"+79991234567"',
      contentType: json,
      status: 400,
      code: 'validation_error',
    },
    {
      name: 'JSON number',
      url: '/api/auth/request-code/',
      payload: '42',
      contentType: json,
      status: 400,
      code: 'validation_error',
    },
    {
      name: 'JSON null',
      url: '/api/auth/request-code/',
      payload: 'null',
      contentType: json,
      status: 400,
      code: 'validation_error',
    },
    {
      name: 'empty body',
      url: '/api/auth/request-code/',
      payload: '',
      contentType: json,
      status: 400,
      code: 'validation_error',
    },
    {
      name: 'phone null',
      url: '/api/auth/request-code/',
      payload: '{"phone_number":null}',
      contentType: json,
      status: 400,
      code: 'validation_error',
    },
    {
      name: 'phone object',
      url: '/api/auth/request-code/',
      payload: '{"phone_number":{"$gt":""}}',
      contentType: json,
      status: 400,
      code: 'validation_error',
    },
    {
      name: 'phone array of two',
      url: '/api/auth/request-code/',
      payload: '{"phone_number":["1","2"]}',
      contentType: json,
      status: 400,
      code: 'validation_error',
    },
    {
      name: 'phone bool',
      url: '/api/auth/request-code/',
      payload: '{"phone_number":true}',
      contentType: json,
      status: 400,
      code: 'validation_error',
    },
    {
      name: 'phone huge',
      url: '/api/auth/request-code/',
      payload: JSON.stringify({ phone_number: '9'.repeat(5000) }),
      contentType: json,
      status: 400,
      code: 'validation_error',
    },
    {
      name: 'phone unicode digits',
      url: '/api/auth/request-code/',
      payload: JSON.stringify({ phone_number: '+７９９９１２３４５６７' }),
      contentType: json,
      status: 400,
      code: 'invalid_phone',
    },
    {
      name: 'phone emoji',
      url: '/api/auth/request-code/',
      payload: JSON.stringify({ phone_number: '📱+79991234567' }),
      contentType: json,
      status: 400,
      code: 'invalid_phone',
    },
    {
      name: 'phone NUL',
      url: '/api/auth/request-code/',
      payload: JSON.stringify({ phone_number: '+7999\u00001234567' }),
      contentType: json,
      status: 400,
      code: 'invalid_phone',
    },
    {
      name: 'phone RTL override',
      url: '/api/auth/request-code/',
      payload: JSON.stringify({ phone_number: '\u202e+79991234567' }),
      contentType: json,
      status: 400,
      code: 'invalid_phone',
    },
    {
      name: 'phone SQL',
      url: '/api/auth/request-code/',
      payload: JSON.stringify({ phone_number: "'; drop table users; --" }),
      contentType: json,
      status: 400,
      code: 'invalid_phone',
    },
    {
      name: 'lone surrogate',
      url: '/api/auth/request-code/',
      payload: '{"phone_number":"\\ud800"}',
      contentType: json,
      status: 400,
      code: 'invalid_phone',
    },
    {
      name: 'code missing',
      url: '/api/auth/verify-code/',
      payload: '{"phone_number":"+79991234567"}',
      contentType: json,
      status: 400,
      code: 'validation_error',
    },
    {
      name: 'code huge',
      url: '/api/auth/verify-code/',
      payload: JSON.stringify({ phone_number: '+79991234567', code: '1'.repeat(100) }),
      contentType: json,
      status: 400,
      code: 'validation_error',
    },
    {
      name: 'code object',
      url: '/api/auth/verify-code/',
      payload: '{"phone_number":"+79991234567","code":{}}',
      contentType: json,
      status: 400,
      code: 'validation_error',
    },
    {
      name: 'body over 16 KiB',
      url: '/api/auth/request-code/',
      payload: JSON.stringify({ phone_number: '+79991234567', pad: 'x'.repeat(17 * 1024) }),
      contentType: json,
      status: 413,
      code: 'payload_too_large',
    },
    {
      name: 'form body over 16 KiB',
      url: '/api/auth/request-code/',
      payload: `phone_number=1&pad=${'x'.repeat(17 * 1024)}`,
      contentType: 'application/x-www-form-urlencoded',
      status: 413,
      code: 'payload_too_large',
    },
    {
      name: 'text/plain',
      url: '/api/auth/request-code/',
      payload: 'phone_number=+79991234567',
      contentType: 'text/plain',
      status: 415,
      code: 'unsupported_media_type',
    },
    {
      name: 'multipart',
      url: '/api/auth/request-code/',
      payload: '--x\r\n\r\n--x--',
      contentType: 'multipart/form-data; boundary=x',
      status: 415,
      code: 'unsupported_media_type',
    },
    {
      name: 'deep JSON',
      url: '/api/auth/request-code/',
      payload: `${'['.repeat(5000)}${']'.repeat(5000)}`,
      contentType: json,
      status: 400,
      code: 'validation_error',
    },
    {
      name: 'form repeated field',
      url: '/api/auth/request-code/',
      payload: 'phone_number=1&phone_number=2',
      contentType: 'application/x-www-form-urlencoded',
      status: 400,
      code: 'validation_error',
    },
  ];

  for (const c of cases) {
    it(`${c.name} -> ${c.status} ${c.code}`, async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: c.url,
        payload: c.payload,
        headers: c.contentType ? { 'content-type': c.contentType } : {},
      });
      expect(res.statusCode, res.body).toBe(c.status);
      const body = res.json();
      expect(body.code).toBe(c.code);
      expect(typeof body.error).toBe('string');
      expect(body.error.length).toBeGreaterThan(0);
      expect(Object.keys(body).every((k) => ['error', 'code', 'fields'].includes(k))).toBe(true);
      if (c.code === 'validation_error' && body.fields) {
        for (const messages of Object.values(body.fields))
          expect(messages).toEqual(expect.arrayContaining([expect.any(String)]));
      }
    });
  }

  it('a missing field names the field', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/api/auth/request-code/', payload: {} });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error: 'Invalid input.',
      code: 'validation_error',
      fields: { phone_number: ['This field is required.'] },
    });
  });

  it('a number or an array where a string is expected is a validation_error, not coerced', async () => {
    const mustBeString = (field: string) => ({
      error: 'Invalid input.',
      code: 'validation_error',
      fields: { [field]: ['Must be of type string.'] },
    });
    for (const [url, payload, field] of [
      ['/api/auth/request-code/', '{"phone_number":79997770004}', 'phone_number'],
      ['/api/auth/request-code/', '{"phone_number":["+79997770004"]}', 'phone_number'],
      ['/api/auth/verify-code/', '{"phone_number":"+79997770004","code":1234}', 'code'],
      ['/api/auth/verify-code/', '{"phone_number":"+79997770004","code":["1234"]}', 'code'],
    ] as const) {
      const res = await t.app.inject({
        method: 'POST',
        url,
        headers: { 'content-type': json },
        payload,
      });
      expect(res.statusCode, payload).toBe(400);
      expect(res.json(), payload).toEqual(mustBeString(field));
    }
    const activation = await t.app.inject({
      method: 'POST',
      url: '/api/profile/',
      headers: { ...auth(user.token), 'content-type': json },
      payload: '{"invite_code":123456}',
    });
    expect(activation.json()).toEqual(mustBeString('invite_code'));
  });

  it('form bodies and query strings, text by nature, are still read', async () => {
    const form = await t.app.inject({
      method: 'POST',
      url: '/api/auth/request-code/',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'phone_number=%2B79997770005',
    });
    expect(form.statusCode, form.body).toBe(200);
    const page = await t.app.inject({
      method: 'GET',
      url: '/api/profile/referrals/?limit=2',
      headers: auth(user.token),
    });
    expect(page.statusCode, page.body).toBe(200);
    expect(page.json()).toEqual({ count: 0, results: [], next_cursor: null });
  });

  it('unknown paths are a 404, known paths with another method a 405', async () => {
    const missing = await t.app.inject({
      method: 'GET',
      url: '/api/nope/',
      headers: auth(user.token),
    });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: 'No route for GET /api/nope/.', code: 'not_found' });
    for (const [method, url, allow] of [
      ['DELETE', '/api/profile/', 'GET, HEAD, POST'],
      ['PUT', '/api/profile', 'GET, HEAD, POST'],
      ['GET', '/api/auth/request-code/', 'POST'],
    ] as const) {
      const res = await t.app.inject({ method, url, headers: auth(user.token) });
      expect(res.statusCode, `${method} ${url}`).toBe(405);
      expect(res.json()).toEqual({
        error: `Method ${method} is not allowed on ${url}.`,
        code: 'method_not_allowed',
      });
      expect(res.headers.allow?.toString().split(', ').sort().join(', ')).toBe(allow);
    }
  });

  it('absurd Authorization headers are a 401, never a 500', async () => {
    for (const header of [
      `Token ${'x'.repeat(10_000)}`,
      'Token \u0000',
      'Token  ',
      '   ',
      'Token a b c',
    ]) {
      const res = await t.app.inject({
        method: 'GET',
        url: '/api/profile/',
        headers: { authorization: header },
      });
      expect(res.statusCode, JSON.stringify(header.slice(0, 20))).toBe(401);
    }
  });

  it('absurd query strings on the referrals page are a 400', async () => {
    for (const query of [
      `cursor=${'A'.repeat(5000)}`,
      'limit=1e309',
      'limit=1&limit=2',
      'cursor=cjE6OTk5OTk5OTk5OQ',
      'cursor=%00',
      'limit=99999999999999999999',
    ]) {
      const res = await t.app.inject({
        method: 'GET',
        url: `/api/profile/referrals/?${query}`,
        headers: auth(user.token),
      });
      expect(res.statusCode, query).toBe(400);
      expect(['validation_error', 'invalid_cursor']).toContain(res.json().code);
    }
  });
});
