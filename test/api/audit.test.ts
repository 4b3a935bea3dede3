import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { signInStaff } from '../admin-helper.js';
import {
  auth,
  backends,
  createTestApp,
  nextPhone,
  requestCode,
  type SignedIn,
  signIn,
  type TestApp,
} from '../helper.js';

type Entry = {
  id: number;
  at: string;
  type: string;
  actor: string;
  actor_id: number | null;
  user_id: number | null;
  ip: string | null;
  details: Record<string, unknown>;
};

/** Every key any entry's details may have: nothing that could hold a code or a token. */
const DETAIL_KEYS = new Set([
  'phone_number',
  'reason',
  'new_user',
  'revoked',
  'referrer_id',
  'created_user',
  'os_user',
  'host',
  'withheld',
  'region',
  'limit',
]);

describe.each(backends)('audit log (%s)', (backend) => {
  let t: TestApp;
  afterEach(async () => {
    await t?.close();
  });

  const quick = { OTP_RESEND_COOLDOWN_SECONDS: '0' };
  const get = (who: SignedIn, url: string) =>
    t.app.inject({ method: 'GET', url, headers: auth(who.token) });
  const post = (who: SignedIn, url: string, payload?: object) =>
    t.app.inject({ method: 'POST', url, headers: auth(who.token), payload });
  const verify = (phone_number: string, code: string) =>
    t.app.inject({
      method: 'POST',
      url: '/api/auth/verify-code/',
      payload: { phone_number, code },
    });
  const entries = async (staff: SignedIn, query = ''): Promise<Entry[]> => {
    const res = await get(staff, `/api/admin/audit/?limit=1000${query}`);
    expect(res.statusCode, res.body).toBe(200);
    return res.json().results;
  };
  /** Rows in the table, read behind the API: what a flood of guesses must not grow. */
  const rowCount = async () => {
    const result = await t.deps.database.db.execute(
      sql`select count(*)::int as count from audit_log`,
    );
    return Number((result as unknown as { rows: { count: number }[] }).rows[0]?.count);
  };

  it('records sign-ins and codes sent, with time, subject and IP', async () => {
    t = await createTestApp({ backend, env: quick });
    const staff = await signInStaff(t);
    const phone = nextPhone();
    const user = await signIn(t, phone);
    t.clock.advance(10);
    await signIn(t, phone);

    const own = await entries(staff, `&user_id=${user.user.id}`);
    const at = t.clock.now().toISOString();
    const base = { ip: '127.0.0.1', user_id: user.user.id, id: expect.any(Number) };
    expect(own).toEqual([
      {
        ...base,
        at,
        type: 'sign_in',
        actor: 'user',
        actor_id: user.user.id,
        details: { new_user: false },
      },
      {
        ...base,
        at,
        type: 'code_sent',
        actor: 'anonymous',
        actor_id: null,
        details: { phone_number: phone },
      },
      {
        ...base,
        at: expect.any(String),
        type: 'sign_in',
        actor: 'user',
        actor_id: user.user.id,
        details: { new_user: true },
      },
    ]);
    // The first code went to a number nobody had yet: the entry names the number only.
    const first = (await entries(staff, '&type=code_sent')).filter(
      (entry) => entry.details.phone_number === phone,
    );
    expect(first.at(-1)).toMatchObject({ user_id: null, actor: 'anonymous' });
  });

  it('code requests answered together are each recorded (their entries are written in one statement)', async () => {
    t = await createTestApp({ backend, env: quick });
    const staff = await signInStaff(t);
    const phones = Array.from({ length: 6 }, () => nextPhone());
    const answers = await Promise.all(
      phones.map((phone_number) =>
        t.app.inject({ method: 'POST', url: '/api/auth/request-code/', payload: { phone_number } }),
      ),
    );
    for (const answer of answers) expect(answer.statusCode, answer.body).toBe(200);
    const sent = (await entries(staff, '&type=code_sent')).map((e) => e.details.phone_number);
    for (const phone of phones) expect(sent).toContain(phone);
  });

  it('a country over its SMS budget is recorded once per hour, however many refusals, on every instance', async () => {
    const env = { ...quick, SMS_MAX_PER_REGION_PER_HOUR: 'KZ:1,*:100' };
    t = await createTestApp({ backend, env });
    const other = await createTestApp({ backend, env, shareWith: t });
    try {
      const staff = await signInStaff(t);
      let kz = 0;
      const sendKz = (app: TestApp) =>
        app.app.inject({
          method: 'POST',
          url: '/api/auth/request-code/',
          payload: { phone_number: `+7701234${String(kz++).padStart(4, '0')}` },
        });
      expect((await sendKz(t)).statusCode).toBe(200);
      const before = await rowCount();
      for (const app of [t, other, t, other, t]) expect((await sendKz(app)).statusCode).toBe(429);
      const hits = await entries(staff, '&type=sms_region_budget_hit');
      expect(hits).toEqual([
        {
          id: expect.any(Number),
          at: t.clock.now().toISOString(),
          type: 'sms_region_budget_hit',
          actor: 'system',
          actor_id: null,
          user_id: null,
          ip: null,
          details: { region: 'KZ', limit: 1 },
        },
      ]);
      // Five refusals, one row: a flood is not a flood of writes.
      expect(await rowCount()).toBe(before + 1);

      // The next hour's first hit is recorded again, once.
      t.clock.advance(3600);
      const answers = [];
      for (const app of [t, other, t, other]) answers.push((await sendKz(app)).statusCode);
      expect(answers).toContain(429);
      expect(await entries(staff, '&type=sms_region_budget_hit')).toHaveLength(2);
    } finally {
      await other.close();
    }
  });

  it('a flood of wrong guesses writes nothing; only the guess that voids the code is recorded', async () => {
    t = await createTestApp({ backend, env: { ...quick, OTP_MAX_ATTEMPTS: '5' } });
    const staff = await signInStaff(t);
    const user = await signIn(t);
    const phone = user.user.phone_number;
    const code = await requestCode(t, phone);
    const wrong = code === '0000' ? '1111' : '0000';
    const before = await rowCount();
    for (let guess = 1; guess <= 4; guess++) {
      const res = await verify(phone, wrong);
      expect(res.json()).toMatchObject({ code: 'invalid_code', attempts_left: 5 - guess });
      expect(await rowCount(), `guess ${guess}`).toBe(before);
    }
    const voiding = await verify(phone, wrong);
    expect(voiding.json()).toEqual({
      error: 'Invalid verification code.',
      code: 'invalid_code',
      attempts_left: 0,
    });
    expect(await rowCount()).toBe(before + 1);
    for (const guess of [wrong, code, wrong]) {
      expect((await verify(phone, guess)).statusCode).toBe(429);
    }
    expect(await rowCount()).toBe(before + 1);
    const [failed] = await entries(staff, '&type=sign_in_failed');
    expect(failed).toEqual({
      id: expect.any(Number),
      at: t.clock.now().toISOString(),
      type: 'sign_in_failed',
      actor: 'anonymous',
      actor_id: null,
      user_id: user.user.id,
      ip: '127.0.0.1',
      details: { phone_number: phone, reason: 'code_voided' },
    });
  });

  it('a blocked number that signs in with a live code is refused and recorded once', async () => {
    t = await createTestApp({ backend, env: quick });
    const staff = await signInStaff(t);
    const user = await signIn(t);
    const phone = user.user.phone_number;
    const code = await requestCode(t, phone);
    expect((await post(staff, `/api/admin/users/${user.user.id}/block/`)).statusCode).toBe(200);
    const before = await rowCount();
    expect((await verify(phone, code)).statusCode).toBe(403);
    expect(await rowCount()).toBe(before + 1);
    const [failed] = await entries(staff, `&type=sign_in_failed&user_id=${user.user.id}`);
    expect(failed).toMatchObject({
      actor: 'anonymous',
      actor_id: null,
      ip: '127.0.0.1',
      details: { phone_number: phone, reason: 'blocked' },
    });
    // The code was used up by that attempt: nothing more is written for it.
    expect((await verify(phone, code)).statusCode).toBe(400);
    expect(await rowCount()).toBe(before + 1);
  });

  it('a blocked number is sent nothing; its withheld code is recorded, and refused when used', async () => {
    t = await createTestApp({ backend, env: quick });
    const staff = await signInStaff(t);
    const user = await signIn(t);
    const phone = user.user.phone_number;
    await post(staff, `/api/admin/users/${user.user.id}/block/`);
    const sent = t.sms.sent.length;
    const code = await requestCode(t, phone);
    expect(t.sms.sent.length).toBe(sent);
    const refused = await verify(phone, code);
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toEqual({ error: 'This account is blocked.', code: 'forbidden' });
    const own = await entries(staff, `&user_id=${user.user.id}`);
    expect(own.slice(0, 2).map(({ type, details }) => ({ type, details }))).toEqual([
      { type: 'sign_in_failed', details: { phone_number: phone, reason: 'blocked' } },
      { type: 'code_sent', details: { phone_number: phone, withheld: true } },
    ]);
  });

  it('records activations, logouts and admin actions with their actor', async () => {
    t = await createTestApp({ backend, env: quick });
    const staff = await signInStaff(t);
    const owner = await signIn(t);
    const user = await signIn(t);
    const other = await signIn(t, user.user.phone_number);
    await post(user, '/api/profile/', { invite_code: owner.user.invite_code });
    await post(user, '/api/auth/logout/');
    await post(other, '/api/auth/logout-all/');
    const again = await signIn(t, user.user.phone_number);
    await post(staff, `/api/admin/users/${user.user.id}/revoke-tokens/`);
    await post(staff, `/api/admin/users/${user.user.id}/block/`);
    await post(staff, `/api/admin/users/${user.user.id}/unblock/`);
    expect(again.token).toEqual(expect.any(String));

    const own = (await entries(staff, `&user_id=${user.user.id}`)).filter(
      (entry) => !['sign_in', 'code_sent'].includes(entry.type),
    );
    const byStaff = { actor: 'user', actor_id: staff.user.id, ip: '127.0.0.1' };
    const byUser = { actor: 'user', actor_id: user.user.id, ip: '127.0.0.1' };
    expect(
      own.map(({ type, actor, actor_id, ip, details }) => ({ type, actor, actor_id, ip, details })),
    ).toEqual([
      { type: 'admin_unblock', ...byStaff, details: { revoked: 0 } },
      { type: 'admin_block', ...byStaff, details: { revoked: 0 } },
      { type: 'admin_revoke_tokens', ...byStaff, details: { revoked: 1 } },
      { type: 'logout_all', ...byUser, details: { revoked: 1 } },
      { type: 'logout', ...byUser, details: {} },
      // Every injected request comes from 127.0.0.1: the owner's sign-up IP is the user's.
      {
        type: 'invite_activated',
        ...byUser,
        details: { referrer_id: owner.user.id, flags: ['same_ip'] },
      },
    ]);
  });

  it('never holds a code or a token', async () => {
    t = await createTestApp({ backend, env: quick });
    const staff = await signInStaff(t);
    const secrets: string[] = [staff.token];
    for (let i = 0; i < 3; i++) {
      const phone = nextPhone();
      const code = await requestCode(t, phone);
      await verify(phone, code === '0000' ? '1111' : '0000');
      const res = await verify(phone, code);
      secrets.push(code, res.json().token);
      await t.app.inject({
        method: 'POST',
        url: '/api/auth/logout/',
        headers: auth(res.json().token),
      });
    }
    const all = await entries(staff);
    expect(all.length).toBeGreaterThan(9);
    for (const entry of all) {
      for (const [key, value] of Object.entries(entry.details)) {
        expect(DETAIL_KEYS.has(key), key).toBe(true);
        expect(secrets).not.toContain(value);
      }
      const text = JSON.stringify(entry);
      for (const token of secrets.filter((s) => s.length === 40)) expect(text).not.toContain(token);
    }
  });

  it('pages by user and type, newest first, never skipping or repeating; refuses bad filters', async () => {
    t = await createTestApp({ backend, env: quick });
    const staff = await signInStaff(t);
    const users = await Promise.all(Array.from({ length: 4 }, () => signIn(t)));
    const expected = await entries(staff, '&type=sign_in');
    expect(expected).toHaveLength(5);
    const seen: number[] = [];
    let cursor: string | null = null;
    let written = 0;
    do {
      const url: string = `/api/admin/audit/?type=sign_in&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = (await get(staff, url)).json();
      expect(page.count).toBe(expected.length + written);
      expect(page.count_exact).toBe(true);
      seen.push(...page.results.map((entry: Entry) => entry.id));
      cursor = page.next_cursor;
      // Entries written meanwhile are newer than every page: they come in no later page.
      await signIn(t);
      written += 1;
    } while (cursor !== null);
    expect(seen).toEqual(expected.map((entry) => entry.id));
    expect([...seen].sort((a, b) => b - a)).toEqual(seen);

    const one = users[0] as SignedIn;
    const mine = await entries(staff, `&user_id=${one.user.id}&type=sign_in`);
    expect(mine.map((entry) => [entry.type, entry.user_id])).toEqual([['sign_in', one.user.id]]);

    const cases: [string, string][] = [
      ['type=sign_up', 'type'],
      ['user_id=abc', 'user_id'],
      ['user_id=0', 'user_id'],
      ['limit=0', 'limit'],
      ['limit=1001', 'limit'],
    ];
    for (const [query, field] of cases) {
      const res = await get(staff, `/api/admin/audit/?${query}`);
      expect(res.statusCode, query).toBe(400);
      expect(res.json(), query).toMatchObject({
        code: 'validation_error',
        fields: { [field]: expect.any(Array) },
      });
    }
    for (const bad of ['zzz', Buffer.from('a1:x').toString('base64url')]) {
      const res = await get(staff, `/api/admin/audit/?cursor=${bad}`);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({
        error: 'The cursor is not one this API returned.',
        code: 'invalid_cursor',
        fields: { cursor: ['Invalid cursor.'] },
      });
    }
  });

  it('an audit write that fails does not change the answer it follows', async () => {
    t = await createTestApp({ backend, env: { ...quick, OTP_MAX_ATTEMPTS: '1' } });
    const user = await signIn(t);
    const db = t.deps.database.db;
    await db.execute(sql`alter table audit_log rename to audit_log_away`);
    try {
      const code = await requestCode(t, user.user.phone_number);
      const voiding = await verify(user.user.phone_number, code === '0000' ? '1111' : '0000');
      expect(voiding.json()).toEqual({
        error: 'Invalid verification code.',
        code: 'invalid_code',
        attempts_left: 0,
      });
    } finally {
      await db.execute(sql`alter table audit_log_away rename to audit_log`);
    }
  });
});
