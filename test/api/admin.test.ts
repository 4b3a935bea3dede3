import { afterEach, describe, expect, it } from 'vitest';
import { signInStaff } from '../admin-helper.js';
import {
  auth,
  backends,
  createTestApp,
  requestCode,
  type SignedIn,
  signIn,
  type TestApp,
} from '../helper.js';

const FORBIDDEN = { error: 'This account is not an admin.', code: 'forbidden' };
const NOT_FOUND = { error: 'No user with this id.', code: 'not_found' };
const BAD_CURSOR = {
  error: 'The cursor is not one this API returned.',
  code: 'invalid_cursor',
  fields: { cursor: ['Invalid cursor.'] },
};

describe.each(backends)('admin API (%s)', (backend) => {
  let t: TestApp;
  afterEach(async () => {
    await t?.close();
  });

  const get = (who: SignedIn | null, url: string) =>
    t.app.inject({ method: 'GET', url, headers: who ? auth(who.token) : {} });
  const post = (who: SignedIn | null, url: string, payload?: object) =>
    t.app.inject({ method: 'POST', url, headers: who ? auth(who.token) : {}, payload });
  const activate = (who: SignedIn, owner: SignedIn) =>
    post(who, '/api/profile/', { invite_code: owner.user.invite_code });

  /** Every admin route, with a user id that exists. */
  const routes = (id: number): ['GET' | 'POST', string][] => [
    ['GET', '/api/admin/users/'],
    ['GET', `/api/admin/users/${id}/`],
    ['GET', `/api/admin/users/${id}/referrals/`],
    ['POST', `/api/admin/users/${id}/block/`],
    ['POST', `/api/admin/users/${id}/unblock/`],
    ['POST', `/api/admin/users/${id}/revoke-tokens/`],
    ['GET', '/api/admin/stats/'],
    ['GET', '/api/admin/audit/'],
  ];

  it('every route refuses a request without a token (401) and a non-staff token (403)', async () => {
    t = await createTestApp({ backend });
    const user = await signIn(t);
    for (const [method, url] of routes(user.user.id)) {
      const anonymous = await t.app.inject({ method, url });
      expect(anonymous.statusCode, `${method} ${url}`).toBe(401);
      expect(anonymous.json()).toEqual({
        error: 'Authentication credentials were not provided.',
        code: 'not_authenticated',
      });
      const forged = await t.app.inject({ method, url, headers: auth('0'.repeat(40)) });
      expect(forged.statusCode, `${method} ${url}`).toBe(401);
      const refused = await t.app.inject({ method, url, headers: auth(user.token) });
      expect(refused.statusCode, `${method} ${url}`).toBe(403);
      expect(refused.json()).toEqual(FORBIDDEN);
    }
    // The refused block did nothing.
    expect((await get(user, '/api/profile/')).statusCode).toBe(200);
  });

  it('lists users newest first by default, oldest first with sort=joined_at', async () => {
    t = await createTestApp({ backend });
    const staff = await signInStaff(t);
    t.clock.advance(60);
    const a = await signIn(t);
    t.clock.advance(60);
    const b = await signIn(t);
    await activate(b, a);

    const newest = await get(staff, '/api/admin/users/');
    expect(newest.statusCode).toBe(200);
    expect(newest.json()).toEqual({
      count: 3,
      results: [
        {
          id: b.user.id,
          phone_number: b.user.phone_number,
          invite_code: b.user.invite_code,
          joined_at: t.clock.now().toISOString(),
          is_staff: false,
          is_blocked: false,
          referrals_count: 0,
          referrer_id: a.user.id,
          // Both signed up from 127.0.0.1, as every injected request does.
          flags_count: 1,
        },
        expect.objectContaining({ id: a.user.id, referrals_count: 1, referrer_id: null }),
        expect.objectContaining({ id: staff.user.id, is_staff: true }),
      ],
      next_cursor: null,
    });
    const oldest = (await get(staff, '/api/admin/users/?sort=joined_at')).json();
    expect(oldest.results.map((u: { id: number }) => u.id)).toEqual([
      staff.user.id,
      a.user.id,
      b.user.id,
    ]);
  });

  it('cursor pages never skip or repeat a user, ties in join time included, while users join', async () => {
    t = await createTestApp({ backend });
    const staff = await signInStaff(t);
    // The fake clock stands still: these all join at the same instant.
    const users = [staff, ...(await Promise.all(Array.from({ length: 6 }, () => signIn(t))))];
    t.clock.advance(1);
    users.push(await signIn(t), await signIn(t));
    for (const sort of ['-joined_at', 'joined_at']) {
      const seen: number[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: string = `sort=${sort}&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
        const res = await get(staff, `/api/admin/users/?${query}`);
        expect(res.statusCode, res.body).toBe(200);
        const page = res.json();
        expect(page.count).toBe(users.length);
        seen.push(...page.results.map((u: { id: number }) => u.id));
        cursor = page.next_cursor;
        pages += 1;
        if (pages === 2 && sort === '-joined_at') {
          // A user joining now is newer than every page shown: it is not in the later pages.
          t.clock.advance(1);
          users.push(await signIn(t));
        }
      } while (cursor !== null);
      expect(new Set(seen).size, sort).toBe(seen.length);
      const expected = users.map((u) => u.user.id);
      if (sort === '-joined_at') expected.pop();
      expect([...seen].sort((x, y) => x - y)).toEqual([...expected].sort((x, y) => x - y));
    }
  });

  it('pages through the matches of a search by last digits, in both orders, with their count', async () => {
    t = await createTestApp({ backend });
    const staff = await signInStaff(t);
    const matching: number[] = [];
    for (const prefix of ['+7999100', '+7999200', '+7999300', '+7999400', '+7999500']) {
      matching.push((await signIn(t, `${prefix}4567`)).user.id);
      t.clock.advance(1);
    }
    // Numbers ending in digits next to 4567 in the reversed index: not matches.
    await signIn(t, '+79991004568');
    await signIn(t, '+79991004566');
    await signIn(t, '+79991005567');
    for (const sort of ['-joined_at', 'joined_at']) {
      const seen: number[] = [];
      let cursor: string | null = null;
      do {
        const url: string = `/api/admin/users/?q=4567&sort=${sort}&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
        const page = (await get(staff, url)).json();
        expect(page.count, url).toBe(5);
        seen.push(...page.results.map((u: { id: number }) => u.id));
        cursor = page.next_cursor;
      } while (cursor !== null);
      expect(seen, sort).toEqual(sort === 'joined_at' ? matching : [...matching].reverse());
    }
    // A page after the last match still says how many match.
    const all = (await get(staff, '/api/admin/users/?q=4567&sort=joined_at&limit=4')).json();
    const after = (
      await get(staff, `/api/admin/users/?q=4567&sort=joined_at&limit=4&cursor=${all.next_cursor}`)
    ).json();
    expect(after).toEqual(expect.objectContaining({ count: 5, next_cursor: null }));
    expect(after.results.map((u: { id: number }) => u.id)).toEqual([matching[4]]);
  });

  it('finds a user by any way of writing the number, by its last digits, and by invite code', async () => {
    t = await createTestApp({ backend });
    const staff = await signInStaff(t);
    const target = await signIn(t, '+79991234567');
    await signIn(t, '+79997654321');
    const search = async (q: string) => {
      const res = await get(staff, `/api/admin/users/?q=${encodeURIComponent(q)}`);
      expect(res.statusCode, `${q}: ${res.body}`).toBe(200);
      return res.json();
    };
    for (const q of [
      '+7 999 123-45-67',
      '8 (999) 123-45-67',
      '89991234567',
      '+79991234567',
      '4567',
      '123-45-67',
      ` ${target.user.invite_code.toLowerCase()} `,
    ]) {
      const page = await search(q);
      expect(page.count, q).toBe(1);
      expect(
        page.results.map((u: { id: number }) => u.id),
        q,
      ).toEqual([target.user.id]);
    }
    // Four digits that end neither number.
    expect((await search('9999')).count).toBe(0);
    expect(await search('7654321')).toEqual(
      expect.objectContaining({ count: 1, next_cursor: null }),
    );
    expect(await search('ZZZZZZ')).toEqual({ count: 0, results: [], next_cursor: null });
    expect(await search('nobody')).toEqual({ count: 0, results: [], next_cursor: null });
    // An empty q lists everyone.
    expect((await search('  ')).count).toBe(3);
  });

  it('refuses a search by too few digits, and bad cursors, limits and sorts, with 400', async () => {
    t = await createTestApp({ backend });
    const staff = await signInStaff(t);
    await signIn(t);
    const short = await get(staff, '/api/admin/users/?q=45');
    expect(short.statusCode).toBe(400);
    const message = 'Enter at least 4 digits, a whole number or an invite code.';
    expect(short.json()).toEqual({
      error: message,
      code: 'validation_error',
      fields: { q: [message] },
    });

    const first = (await get(staff, '/api/admin/users/?limit=1')).json();
    expect(first.next_cursor).toEqual(expect.any(String));
    for (const cursor of ['nonsense', 'dTE6eDoxOjE', first.next_cursor.slice(0, -2)]) {
      const res = await get(staff, `/api/admin/users/?cursor=${cursor}`);
      expect(res.statusCode, cursor).toBe(400);
      expect(res.json()).toEqual(BAD_CURSOR);
    }
    // A cursor of one order is no position in the other.
    const mixed = await get(staff, `/api/admin/users/?sort=joined_at&cursor=${first.next_cursor}`);
    expect(mixed.json()).toEqual(BAD_CURSOR);

    for (const limit of ['0', '1001', 'abc', '1e309', '2.5']) {
      const res = await get(staff, `/api/admin/users/?limit=${limit}`);
      expect(res.statusCode, limit).toBe(400);
      expect(res.json()).toMatchObject({
        code: 'validation_error',
        fields: { limit: expect.any(Array) },
      });
    }
    const sort = await get(staff, '/api/admin/users/?sort=phone_number');
    expect(sort.statusCode).toBe(400);
    expect(sort.json()).toMatchObject({
      code: 'validation_error',
      fields: { sort: expect.any(Array) },
    });
  });

  it('shows one user with referrer, first referrals, live tokens and flags; 404 for an unknown id', async () => {
    t = await createTestApp({ backend, env: { OTP_RESEND_COOLDOWN_SECONDS: '0' } });
    const staff = await signInStaff(t);
    const owner = await signIn(t);
    await signIn(t, owner.user.phone_number);
    const middle = await signIn(t);
    const referees = [await signIn(t), await signIn(t)];
    await activate(middle, owner);
    for (const referee of referees) {
      t.clock.advance(1);
      await activate(referee, middle);
    }

    const res = await get(staff, `/api/admin/users/${middle.user.id}/`);
    expect(res.statusCode).toBe(200);
    const referralsAt = (i: number) => new Date(t.clock.now().getTime() - (1 - i) * 1000);
    expect(res.json()).toEqual({
      id: middle.user.id,
      phone_number: middle.user.phone_number,
      invite_code: middle.user.invite_code,
      joined_at: expect.any(String),
      is_staff: false,
      is_blocked: false,
      referrals_count: 2,
      referrer_id: owner.user.id,
      // Both signed up from 127.0.0.1, as every injected request does.
      flags_count: 1,
      referrer: expect.objectContaining({
        id: owner.user.id,
        phone_number: owner.user.phone_number,
        referrals_count: 1,
      }),
      referrals: {
        count: 2,
        results: referees.map((referee, i) => ({
          id: referee.user.id,
          phone_number: referee.user.phone_number,
          activated_at: referralsAt(i).toISOString(),
        })),
        next_cursor: null,
      },
      active_tokens: 1,
      flags: [
        {
          reason: 'same_ip',
          description: expect.stringContaining('same IP address'),
          ip: '127.0.0.1',
          referrer_ip: '127.0.0.1',
          network: '127.0.0.1',
        },
      ],
    });
    const ownerView = (await get(staff, `/api/admin/users/${owner.user.id}/`)).json();
    expect(ownerView).toMatchObject({ referrer: null, active_tokens: 2 });

    for (const url of ['/api/admin/users/999999/', '/api/admin/users/999999/referrals/']) {
      const missing = await get(staff, url);
      expect(missing.statusCode, url).toBe(404);
      expect(missing.json()).toEqual(NOT_FOUND);
    }
    for (const action of ['block', 'unblock', 'revoke-tokens']) {
      const missing = await post(staff, `/api/admin/users/999999/${action}/`);
      expect(missing.statusCode, action).toBe(404);
      expect(missing.json()).toEqual(NOT_FOUND);
    }
    for (const id of ['abc', '0', '-1', '1.5']) {
      const bad = await get(staff, `/api/admin/users/${id}/`);
      expect(bad.statusCode, id).toBe(400);
      expect(bad.json()).toMatchObject({ code: 'validation_error' });
    }
  });

  it("pages through a user's referrals with cursors", async () => {
    t = await createTestApp({ backend });
    const staff = await signInStaff(t);
    const owner = await signIn(t);
    const referees = await Promise.all(Array.from({ length: 5 }, () => signIn(t)));
    for (const referee of referees) await activate(referee, owner);
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const url: string = `/api/admin/users/${owner.user.id}/referrals/?limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = (await get(staff, url)).json();
      expect(page.count).toBe(5);
      seen.push(...page.results.map((r: { id: number }) => r.id));
      cursor = page.next_cursor;
    } while (cursor !== null);
    expect(new Set(seen)).toEqual(new Set(referees.map((r) => r.user.id)));
    expect(seen).toHaveLength(5);
    const bad = await get(staff, `/api/admin/users/${owner.user.id}/referrals/?cursor=xyz`);
    expect(bad.json()).toEqual(BAD_CURSOR);
  });

  it('blocking revokes every token and refuses sign-in; unblocking restores sign-in, not the tokens', async () => {
    t = await createTestApp({ backend, env: { OTP_RESEND_COOLDOWN_SECONDS: '0' } });
    const staff = await signInStaff(t);
    const user = await signIn(t);
    const second = await signIn(t, user.user.phone_number);
    expect((await get(user, '/api/profile/')).statusCode).toBe(200);
    // A code sent before the block.
    const code = await requestCode(t, user.user.phone_number);

    const blocked = await post(staff, `/api/admin/users/${user.user.id}/block/`);
    expect(blocked.statusCode).toBe(200);
    expect(blocked.json()).toEqual({
      user: expect.objectContaining({ id: user.user.id, is_blocked: true }),
      revoked: 2,
    });
    for (const token of [user, second]) {
      const res = await get(token, '/api/profile/');
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual({
        error: 'Invalid, expired or revoked token.',
        code: 'invalid_token',
      });
    }
    const verify = (c: string) =>
      t.app.inject({
        method: 'POST',
        url: '/api/auth/verify-code/',
        payload: { phone_number: user.user.phone_number, code: c },
      });
    const refused = await verify(code);
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toEqual({ error: 'This account is blocked.', code: 'forbidden' });
    expect((await get(staff, `/api/admin/users/${user.user.id}/`)).json()).toMatchObject({
      is_blocked: true,
      active_tokens: 0,
    });

    const unblocked = await post(staff, `/api/admin/users/${user.user.id}/unblock/`);
    expect(unblocked.json()).toEqual({
      user: expect.objectContaining({ id: user.user.id, is_blocked: false }),
      revoked: 0,
    });
    expect((await get(user, '/api/profile/')).statusCode).toBe(401);
    const again = await signIn(t, user.user.phone_number);
    expect((await get(again, '/api/profile/')).statusCode).toBe(200);
  });

  it('revoking tokens signs the user out everywhere; they may sign in again', async () => {
    t = await createTestApp({ backend, env: { OTP_RESEND_COOLDOWN_SECONDS: '0' } });
    const staff = await signInStaff(t);
    const user = await signIn(t);
    const second = await signIn(t, user.user.phone_number);
    await get(user, '/api/profile/');
    const res = await post(staff, `/api/admin/users/${user.user.id}/revoke-tokens/`, {});
    expect(res.json()).toEqual({
      user: expect.objectContaining({ id: user.user.id, is_blocked: false }),
      revoked: 2,
    });
    expect((await get(user, '/api/profile/')).statusCode).toBe(401);
    expect((await get(second, '/api/profile/')).statusCode).toBe(401);
    expect((await get(await signIn(t, user.user.phone_number), '/api/profile/')).statusCode).toBe(
      200,
    );
    // Staff may block other staff, and themselves lose nothing by acting.
    expect((await get(staff, '/api/admin/stats/')).statusCode).toBe(200);
  });

  it('stats: totals, the last 24 hours, sign-ins and the top referrers', async () => {
    t = await createTestApp({ backend, env: { OTP_RESEND_COOLDOWN_SECONDS: '0' } });
    const staff = await signInStaff(t);
    const [a, b, c, d] = await Promise.all(Array.from({ length: 4 }, () => signIn(t)));
    if (!a || !b || !c || !d) throw new Error('four users');
    await activate(b, a);
    await activate(c, a);
    await activate(d, b);
    const stats = async () => {
      const res = await get(staff, '/api/admin/stats/');
      expect(res.statusCode).toBe(200);
      return res.json();
    };
    expect(await stats()).toEqual({
      users_total: 5,
      users_last_24h: 5,
      activations_total: 3,
      activations_last_24h: 3,
      sign_ins_last_24h: 5,
      top_referrers: [
        { id: a.user.id, phone_number: a.user.phone_number, referrals_count: 2 },
        { id: b.user.id, phone_number: b.user.phone_number, referrals_count: 1 },
      ],
    });
    t.clock.advance(86_400 + 1);
    await signIn(t, a.user.phone_number);
    expect(await stats()).toEqual(
      expect.objectContaining({
        users_total: 5,
        users_last_24h: 0,
        activations_total: 3,
        activations_last_24h: 0,
        sign_ins_last_24h: 1,
      }),
    );
  });

  it('stats: the last 24 hours stay exact to the second while minutes are kept and the window slides', async () => {
    t = await createTestApp({ backend, env: { OTP_RESEND_COOLDOWN_SECONDS: '0' } });
    const lastDay = async () => {
      const res = await get(staff, '/api/admin/stats/');
      expect(res.statusCode).toBe(200);
      const { users_last_24h, activations_last_24h, sign_ins_last_24h } = res.json();
      return [users_last_24h, activations_last_24h, sign_ins_last_24h];
    };
    // The staff user and `first` join at T0, half-way through a minute.
    t.clock.advance(30);
    const staff = await signInStaff(t);
    const first = await signIn(t);
    expect(await lastDay()).toEqual([2, 0, 2]);
    // The current minute is not kept yet: a row stamped in it still counts.
    await signIn(t);
    expect(await lastDay()).toEqual([3, 0, 3]);
    t.clock.advance(600);
    // T0 + 10 min: T0's minute is settled, and kept from now on.
    const second = await signIn(t);
    await activate(second, first);
    expect(await lastDay()).toEqual([4, 1, 4]);
    t.clock.advance(600);
    await signIn(t, first.user.phone_number);
    // T0 + 20 min: both earlier minutes are kept; asked twice, the same.
    expect(await lastDay()).toEqual([4, 1, 5]);
    expect(await lastDay()).toEqual([4, 1, 5]);
    // T0 + 24 h: the window starts at T0, in the minute counted live.
    t.clock.advance(86_400 - 1_200);
    expect(await lastDay()).toEqual([4, 1, 5]);
    t.clock.advance(1);
    expect(await lastDay()).toEqual([1, 1, 2]);
    // T0 + 24 h 10 min 1 s: only T0 + 20 min's sign-in is left.
    t.clock.advance(600);
    expect(await lastDay()).toEqual([0, 0, 1]);
    t.clock.advance(600);
    expect(await lastDay()).toEqual([0, 0, 0]);
  });
});
