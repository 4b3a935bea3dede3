import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { auth, backends, createTestApp, type SignedIn, signIn, type TestApp } from '../helper.js';

// Both with the per-instance cache and on the plain path (CACHE_SIZE=0), where
// each read checks the token in the statement that reads.
const cases = backends.flatMap((backend) => [
  { backend, cache: 'cached', env: {} as Record<string, string> },
  { backend, cache: 'CACHE_SIZE=0', env: { CACHE_SIZE: '0' } },
]);

describe.each(cases)('invite codes and referrals ($backend, $cache)', ({ backend, env }) => {
  let t: TestApp;
  afterEach(async () => {
    await t?.close();
  });

  const activate = (who: SignedIn, invite_code: unknown) =>
    t.app.inject({
      method: 'POST',
      url: '/api/profile/',
      headers: auth(who.token),
      payload: { invite_code } as object,
    });
  const profileOf = async (who: SignedIn) =>
    (await t.app.inject({ method: 'GET', url: '/api/profile/', headers: auth(who.token) })).json();

  it('a new profile has its invite code, nothing activated and no referrals', async () => {
    t = await createTestApp({ backend, env });
    const a = await signIn(t);
    expect(await profileOf(a)).toEqual({
      id: a.user.id,
      phone_number: a.user.phone_number,
      invite_code: a.user.invite_code,
      activated_invite_code: null,
      referrals: [],
      referrals_count: 0,
    });
  });

  it('activation answers with the profile; the referrer sees the referral', async () => {
    t = await createTestApp({ backend, env });
    const a = await signIn(t);
    const b = await signIn(t);
    t.clock.advance(5);
    const res = await activate(b, `  ${a.user.invite_code.toLowerCase()} `);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      message: 'Invite code activated successfully.',
      profile: {
        id: b.user.id,
        phone_number: b.user.phone_number,
        invite_code: b.user.invite_code,
        activated_invite_code: a.user.invite_code,
        referrals: [],
        referrals_count: 0,
      },
    });
    const profile = await profileOf(a);
    expect(profile.referrals).toEqual([
      { phone_number: b.user.phone_number, activated_at: t.clock.now().toISOString() },
    ]);
    expect(profile.referrals_count).toBe(1);
  });

  it('refuses unknown codes, own code, a second activation, and cycles of any length', async () => {
    t = await createTestApp({ backend, env });
    const [a, b, c, d] = [await signIn(t), await signIn(t), await signIn(t), await signIn(t)];
    const cases: [SignedIn, string, number, object][] = [
      [a, 'ZZZZZZ', 400, { error: 'Invite code not found.', code: 'invite_not_found' }],
      [
        a,
        a.user.invite_code,
        400,
        { error: 'You cannot activate your own invite code.', code: 'invite_own_code' },
      ],
    ];
    for (const [who, code, status, body] of cases) {
      const res = await activate(who, code);
      expect(res.statusCode, code).toBe(status);
      expect(res.json(), code).toEqual(body);
    }
    // b -> a, c -> b, d -> c: a chain a <- b <- c <- d.
    expect((await activate(b, a.user.invite_code)).statusCode).toBe(200);
    expect((await activate(c, b.user.invite_code)).statusCode).toBe(200);
    expect((await activate(d, c.user.invite_code)).statusCode).toBe(200);
    const again = await activate(b, c.user.invite_code);
    expect(again.statusCode).toBe(400);
    expect(again.json()).toEqual({
      error: 'You have already activated an invite code.',
      code: 'invite_already_activated',
    });
    // a is the root: activating any code below it would close a cycle.
    for (const below of [b, c, d]) {
      const res = await activate(a, below.user.invite_code);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({
        error: 'This invite code belongs to someone you invited, directly or indirectly.',
        code: 'invite_cycle',
      });
    }
    const e = await signIn(t);
    expect((await activate(a, e.user.invite_code)).statusCode).toBe(200);
    expect((await profileOf(a)).activated_invite_code).toBe(e.user.invite_code);
  });

  it('validates the invite_code field', async () => {
    t = await createTestApp({ backend, env });
    const a = await signIn(t);
    const missing = await t.app.inject({
      method: 'POST',
      url: '/api/profile/',
      headers: auth(a.token),
      payload: {},
    });
    expect(missing.statusCode).toBe(400);
    expect(missing.json()).toEqual({
      error: 'Invalid input.',
      code: 'validation_error',
      fields: { invite_code: ['This field is required.'] },
    });
    for (const code of ['', 'ABC', 'ABCDEFG', 'ÄÖÜ123', 'AB-123']) {
      const res = await activate(a, code);
      expect(res.statusCode, code).toBe(400);
      expect(['validation_error', 'invite_not_found'], code).toContain(res.json().code);
    }
  });

  it('embeds the first 100 referrals oldest first, and pages through all of them', async () => {
    t = await createTestApp({ backend, env });
    const owner = await signIn(t);
    // Referrals made directly in the database: 130 sign-ins through HTTP would only slow the test.
    await t.deps.database.db.execute(sql`
      insert into users (phone_number, invite_code, referrer_id, activated_at, referral_seq, created_at)
      select '+7999' || lpad(g::text, 7, '0'), 'R' || lpad(g::text, 5, '0'), ${owner.user.id},
        timestamptz '2026-01-01T00:00:00Z' + g * interval '1 minute', g, now()
      from generate_series(1, 130) g`);
    await t.deps.database.db.execute(
      sql`update users set referrals_count = 130 where id = ${owner.user.id}`,
    );
    const profile = await profileOf(owner);
    expect(profile.referrals_count).toBe(130);
    expect(profile.referrals).toHaveLength(100);
    expect(profile.referrals[0]).toEqual({
      phone_number: '+79990000001',
      activated_at: '2026-01-01T00:01:00.000Z',
    });
    expect(profile.referrals[99].phone_number).toBe('+79990000100');

    const seen: string[] = [];
    let cursor: string | null = '';
    let pages = 0;
    while (cursor !== null) {
      const res: {
        statusCode: number;
        json(): { count: number; results: { phone_number: string }[]; next_cursor: string | null };
      } = await t.app.inject({
        method: 'GET',
        url: `/api/profile/referrals/?limit=40&cursor=${encodeURIComponent(cursor)}`,
        headers: auth(owner.token),
      });
      expect(res.statusCode).toBe(200);
      const page = res.json();
      expect(page.count).toBe(130);
      seen.push(...page.results.map((r) => r.phone_number));
      cursor = page.next_cursor;
      pages++;
    }
    expect(pages).toBe(4);
    expect(seen).toEqual(
      Array.from({ length: 130 }, (_, i) => `+7999${String(i + 1).padStart(7, '0')}`),
    );
  });

  it('the 100th activation keeps the first 100 with the owner; the profile embeds the same', async () => {
    t = await createTestApp({ backend, env });
    const owner = await signIn(t);
    const hundredth = await signIn(t);
    const later = await signIn(t);
    await t.deps.database.db.execute(sql`
      insert into users (phone_number, invite_code, referrer_id, activated_at, referral_seq, created_at)
      select '+7999' || lpad(g::text, 7, '0'), 'R' || lpad(g::text, 5, '0'), ${owner.user.id},
        timestamptz '2026-01-01T00:00:00.123456Z' + g * interval '1 minute', g, now()
      from generate_series(1, 99) g`);
    await t.deps.database.db.execute(
      sql`update users set referrals_count = 99 where id = ${owner.user.id}`,
    );
    const stored = async () => {
      const result = (await t.deps.database.db.execute(
        sql`select first_referrals from users where id = ${owner.user.id}`,
      )) as unknown as { rows: { first_referrals: string | null }[] };
      return result.rows[0]?.first_referrals;
    };
    const before = (await profileOf(owner)).referrals;
    expect(before).toHaveLength(99);
    expect(await stored()).toBeNull();

    expect((await activate(hundredth, owner.user.invite_code)).statusCode).toBe(200);
    const kept = await stored();
    expect(kept).not.toBeNull();
    const first100 = [
      ...before,
      { phone_number: hundredth.user.phone_number, activated_at: t.clock.now().toISOString() },
    ];
    expect(JSON.parse(kept as string)).toEqual(first100);
    expect(before[0]).toEqual({
      phone_number: '+79990000001',
      activated_at: '2026-01-01T00:01:00.123Z',
    });

    expect((await activate(later, owner.user.invite_code)).statusCode).toBe(200);
    expect(await stored()).toBe(kept);
    const profile = await profileOf(owner);
    expect(profile.referrals).toEqual(first100);
    expect(profile.referrals_count).toBe(101);
    const page = await t.app.inject({
      method: 'GET',
      url: '/api/profile/referrals/?limit=100',
      headers: auth(owner.token),
    });
    expect(page.json().results).toEqual(first100);
  });

  it('the default page is 100 and the last page has next_cursor null', async () => {
    t = await createTestApp({ backend, env });
    const a = await signIn(t);
    const b = await signIn(t);
    await activate(b, a.user.invite_code);
    const res = await t.app.inject({
      method: 'GET',
      url: '/api/profile/referrals/',
      headers: auth(a.token),
    });
    expect(res.json()).toEqual({
      count: 1,
      results: [{ phone_number: b.user.phone_number, activated_at: expect.any(String) }],
      next_cursor: null,
    });
  });

  it('rejects bad cursors and limits with a 400', async () => {
    t = await createTestApp({ backend, env });
    const a = await signIn(t);
    const get = (query: string) =>
      t.app.inject({
        method: 'GET',
        url: `/api/profile/referrals/?${query}`,
        headers: auth(a.token),
      });
    const bad = await get('cursor=not-a-cursor');
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual({
      error: 'The cursor is not one this API returned.',
      code: 'invalid_cursor',
      fields: { cursor: ['Invalid cursor.'] },
    });
    for (const limit of ['0', '1001', 'abc', '-5', '1.5']) {
      const res = await get(`limit=${limit}`);
      expect(res.statusCode, limit).toBe(400);
      expect(res.json().code, limit).toBe('validation_error');
      expect(Object.keys(res.json().fields), limit).toEqual(['limit']);
    }
    expect((await get('limit=1000')).statusCode).toBe(200);
  });

  it('invite codes are unique and well-formed across many users', async () => {
    t = await createTestApp({ backend, env });
    const users = await Promise.all(Array.from({ length: 30 }, () => signIn(t)));
    const codes = new Set(users.map((u) => u.user.invite_code));
    expect(codes.size).toBe(30);
    for (const code of codes) expect(code).toMatch(/^[A-Z0-9]{6}$/);
  });
});
