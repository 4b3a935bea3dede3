import { afterEach, describe, expect, it } from 'vitest';
import { auth, backends, createTestApp, signIn, type TestApp } from '../helper.js';

describe.each(backends)('smoke (%s)', (backend) => {
  let t: TestApp;
  afterEach(() => t?.close());

  it('signs in, activates, lists', async () => {
    t = await createTestApp({ backend });
    const a = await signIn(t);
    const b = await signIn(t);
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/profile/',
      headers: auth(b.token),
      payload: { invite_code: a.user.invite_code.toLowerCase() },
    });
    expect(res.statusCode, res.body).toBe(200);
    const prof = await t.app.inject({ method: 'GET', url: '/api/profile', headers: auth(a.token) });
    console.log(prof.body);
    expect(prof.json().referrals_count).toBe(1);
    const page = await t.app.inject({
      method: 'GET',
      url: '/api/profile/referrals/?limit=1',
      headers: auth(a.token),
    });
    console.log(page.body);
    const doc = await t.app.inject({ method: 'GET', url: '/api/openapi.json' });
    console.log(doc.body.slice(0, 3000));
  });
});
