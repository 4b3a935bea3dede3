import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { auth, backends, createTestApp, signIn, type TestApp } from '../helper.js';

/**
 * The plain path (CACHE_SIZE=0): the profile and a referrals page check the
 * token in the statement that reads them (live_token_user), one statement per
 * request, with every token rule of SPEC section 4 kept.
 */
describe.each(backends)('reads on the plain path (%s)', (backend) => {
  let t: TestApp;
  afterEach(async () => {
    await t?.close();
  });

  const get = (url: string, token: string) =>
    t.app.inject({ method: 'GET', url, headers: auth(token) });

  const activate = (token: string, inviteCode: string) =>
    t.app.inject({
      method: 'POST',
      url: '/api/profile/',
      headers: auth(token),
      payload: { invite_code: inviteCode },
    });

  /** Counts the hot-path statements the app runs from now on. */
  const countStatements = () => {
    const { database } = t.deps;
    const query = database.query.bind(database);
    const names: string[] = [];
    database.query = (name, text, params) => {
      names.push(name);
      return query(name, text, params);
    };
    return names;
  };

  it('answers a profile or a page with one statement, the token checked in it', async () => {
    t = await createTestApp({ backend, env: { CACHE_SIZE: '0', SIGN_IN_BATCHING: 'false' } });
    const a = await signIn(t);
    const b = await signIn(t);
    expect((await get('/api/profile/', a.token)).statusCode).toBe(200);
    await activate(b.token, a.user.invite_code);
    const statements = countStatements();
    const profile = await get('/api/profile/', a.token);
    expect(profile.statusCode).toBe(200);
    expect(profile.json().referrals).toEqual([
      { phone_number: b.user.phone_number, activated_at: t.clock.now().toISOString() },
    ]);
    expect(statements).toEqual(['profiles_of_tokens']);
    const page = await get('/api/profile/referrals/?limit=1', a.token);
    expect(page.statusCode).toBe(200);
    expect(page.json()).toEqual({
      count: 1,
      results: [{ phone_number: b.user.phone_number, activated_at: t.clock.now().toISOString() }],
      next_cursor: null,
    });
    expect(statements).toEqual(['profiles_of_tokens', 'referrals_pages_of_tokens']);
  });

  it('reads the profiles asked for together in one statement, each token checked on its own', async () => {
    t = await createTestApp({ backend, env: { CACHE_SIZE: '0' } });
    const a = await signIn(t);
    const b = await signIn(t);
    const revoked = await signIn(t);
    await t.app.inject({ method: 'POST', url: '/api/auth/logout/', headers: auth(revoked.token) });
    await activate(b.token, a.user.invite_code);
    const statements = countStatements();
    const tokens = [a.token, revoked.token, b.token, 'not-a-token', a.token];
    const answers = await Promise.all(tokens.map((token) => get('/api/profile/', token)));
    expect(answers.map((res) => res.statusCode)).toEqual([200, 401, 200, 401, 200]);
    expect(answers.map((res) => res.json().id ?? res.json().code)).toEqual([
      a.user.id,
      'invalid_token',
      b.user.id,
      'invalid_token',
      a.user.id,
    ]);
    expect(answers[0]?.json().referrals).toEqual([
      { phone_number: b.user.phone_number, activated_at: t.clock.now().toISOString() },
    ]);
    expect(answers[2]?.json().activated_invite_code).toBe(a.user.invite_code);
    expect(statements).toEqual(['profiles_of_tokens']);
  });

  it('reads the pages asked for together in one statement, each at its own token and cursor', async () => {
    t = await createTestApp({ backend, env: { CACHE_SIZE: '0' } });
    const a = await signIn(t);
    const b = await signIn(t);
    const c = await signIn(t);
    const revoked = await signIn(t);
    await t.app.inject({ method: 'POST', url: '/api/auth/logout/', headers: auth(revoked.token) });
    await activate(b.token, a.user.invite_code);
    await activate(c.token, a.user.invite_code);
    const first = (await get('/api/profile/referrals/?limit=1', a.token)).json();
    expect(first.results.map((r: { phone_number: string }) => r.phone_number)).toEqual([
      b.user.phone_number,
    ]);
    const statements = countStatements();
    const asks: [string, string][] = [
      ['/api/profile/referrals/?limit=1', a.token],
      [`/api/profile/referrals/?limit=1&cursor=${first.next_cursor}`, a.token],
      ['/api/profile/referrals/', revoked.token],
      ['/api/profile/referrals/', 'not-a-token'],
      ['/api/profile/referrals/?limit=5', b.token],
      ['/api/profile/referrals/?limit=5', a.token],
    ];
    const answers = await Promise.all(asks.map(([url, token]) => get(url, token)));
    expect(answers.map((res) => res.statusCode)).toEqual([200, 200, 401, 401, 200, 200]);
    const phones = (index: number) =>
      answers[index]?.json().results.map((r: { phone_number: string }) => r.phone_number);
    expect(answers[0]?.json()).toMatchObject({ count: 2, next_cursor: first.next_cursor });
    expect(phones(0)).toEqual([b.user.phone_number]);
    expect(answers[1]?.json()).toMatchObject({ count: 2, next_cursor: null });
    expect(phones(1)).toEqual([c.user.phone_number]);
    expect(answers[4]?.json()).toEqual({ count: 0, results: [], next_cursor: null });
    expect(phones(5)).toEqual([b.user.phone_number, c.user.phone_number]);
    expect(statements).toEqual(['referrals_pages_of_tokens']);
  });

  it('a page of an expired, revoked or blocked token is a 401, as is a profile', async () => {
    t = await createTestApp({ backend, env: { CACHE_SIZE: '0', TOKEN_TTL_DAYS: '1' } });
    const expiring = await signIn(t);
    const revoked = await signIn(t);
    const blocked = await signIn(t);
    const live = await signIn(t);
    await t.app.inject({ method: 'POST', url: '/api/auth/logout/', headers: auth(revoked.token) });
    await t.deps.database.db.execute(
      sql`update users set is_blocked = true where id = ${blocked.user.id}`,
    );
    await t.deps.database.db.execute(
      sql`update api_tokens set expires_at = ${new Date(t.clock.now().getTime() + 1000).toISOString()}
          where user_id = ${expiring.user.id}`,
    );
    t.clock.advance(1);
    for (const url of ['/api/profile/', '/api/profile/referrals/']) {
      for (const who of [expiring, revoked, blocked]) {
        const res = await get(url, who.token);
        expect(res.statusCode, url).toBe(401);
        expect(res.json()).toEqual({
          error: 'Invalid, expired or revoked token.',
          code: 'invalid_token',
        });
        expect(res.headers['www-authenticate']).toBe('Token');
      }
      expect((await get(url, live.token)).statusCode, url).toBe(200);
    }
  });

  it('a bad cursor without a live token is a 401 first, with one a 400', async () => {
    for (const cache of ['0', '100']) {
      t = await createTestApp({ backend, env: { CACHE_SIZE: cache } });
      const a = await signIn(t);
      const unknown = await get('/api/profile/referrals/?cursor=nope', 'f'.repeat(40));
      expect(unknown.statusCode, cache).toBe(401);
      expect(unknown.json().code).toBe('invalid_token');
      const bad = await get('/api/profile/referrals/?cursor=nope', a.token);
      expect(bad.statusCode, cache).toBe(400);
      expect(bad.json().code).toBe('invalid_cursor');
      await t.close();
    }
  });

  it('activated_at is written as a Date would write it: UTC, milliseconds cut, not rounded', async () => {
    for (const cache of ['0', '100']) {
      t = await createTestApp({ backend, env: { CACHE_SIZE: cache } });
      const a = await signIn(t);
      const b = await signIn(t);
      await t.app.inject({
        method: 'POST',
        url: '/api/profile/',
        headers: auth(b.token),
        payload: { invite_code: a.user.invite_code },
      });
      // Written by hand with microseconds, in another time zone.
      await t.deps.database.db.execute(
        sql`update users set activated_at = timestamptz '2026-03-04 05:06:07.891999+03'
            where id = ${b.user.id}`,
      );
      const expected = [
        { phone_number: b.user.phone_number, activated_at: '2026-03-04T02:06:07.891Z' },
      ];
      expect((await get('/api/profile/', a.token)).json().referrals, cache).toEqual(expected);
      expect((await get('/api/profile/referrals/', a.token)).json().results, cache).toEqual(
        expected,
      );
      await t.close();
    }
  });
});
