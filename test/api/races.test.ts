import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import {
  auth,
  type Backend,
  backends,
  createTestApp,
  nextPhone,
  requestCode,
  type SignedIn,
  signIn,
  type TestApp,
} from '../helper.js';

/**
 * Race tests need PostgreSQL and Redis (TEST_DATABASE_URL and TEST_REDIS_URL):
 * only there do concurrent requests interleave across pooled connections.
 * PGlite runs one statement at a time, so these flows pass on it even with the
 * `for update` or the cycle re-check of an activation removed; on it they run
 * once each, as a smoke test of the flows, which proves nothing about races.
 * With CI set, global setup fails the run when the variables are missing.
 */
const onPostgres = backends.includes('postgres');
if (!onPostgres) {
  console.warn(
    'Skipping the race tests (test/api/races.test.ts): they need TEST_DATABASE_URL and ' +
      'TEST_REDIS_URL, since only PostgreSQL runs the concurrent requests in parallel; PGlite ' +
      'runs the same flows once each as a smoke test.',
  );
}

const ALREADY_ACTIVATED = {
  error: 'You have already activated an invite code.',
  code: 'invite_already_activated',
};
const CYCLE = {
  error: 'This invite code belongs to someone you invited, directly or indirectly.',
  code: 'invite_cycle',
};

/** How often each race is set up again: on PostgreSQL a lost race shows in one trial of a few. */
const TRIALS: Record<Backend, number> = { postgres: 5, embedded: 1 };

describe.skipIf(!onPostgres)('races (postgres; needs TEST_DATABASE_URL and TEST_REDIS_URL)', () => {
  raceFlows('postgres');
});

describe('race flows, smoke test (embedded; not a race test: PGlite runs one statement at a time)', () => {
  raceFlows('embedded');
});

function raceFlows(backend: Backend): void {
  const trials = TRIALS[backend];
  let t: TestApp;
  afterEach(async () => {
    await t?.close();
  });

  const activate = (who: SignedIn, invite_code: string) =>
    t.app.inject({
      method: 'POST',
      url: '/api/profile/',
      headers: auth(who.token),
      payload: { invite_code },
    });
  const verify = (phone_number: string, code: string) =>
    t.app.inject({
      method: 'POST',
      url: '/api/auth/verify-code/',
      payload: { phone_number, code },
    });

  it('20 users activating one code at once all succeed, each counted once', async () => {
    t = await createTestApp({ backend });
    for (let trial = 0; trial < trials; trial++) {
      const owner = await signIn(t);
      const users = await Promise.all(Array.from({ length: 20 }, () => signIn(t)));
      const results = await Promise.all(users.map((u) => activate(u, owner.user.invite_code)));
      expect(results.map((r) => r.statusCode)).toEqual(Array(20).fill(200));
      const profile = (
        await t.app.inject({ method: 'GET', url: '/api/profile/', headers: auth(owner.token) })
      ).json();
      expect(profile.referrals_count).toBe(20);
      expect(
        new Set(profile.referrals.map((r: { phone_number: string }) => r.phone_number)).size,
      ).toBe(20);
      const seqs = await t.deps.database.db.execute(
        sql`select referral_seq from users where referrer_id = ${owner.user.id} order by referral_seq`,
      );
      expect(
        (seqs as unknown as { rows: { referral_seq: number }[] }).rows.map((r) => r.referral_seq),
      ).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    }
  });

  it('one user activating 8 codes at once: exactly one succeeds', async () => {
    t = await createTestApp({ backend });
    for (let trial = 1; trial <= trials; trial++) {
      const user = await signIn(t);
      const owners = await Promise.all(Array.from({ length: 8 }, () => signIn(t)));
      const results = await Promise.all(owners.map((o) => activate(user, o.user.invite_code)));
      const ok = results.filter((r) => r.statusCode === 200);
      expect(ok).toHaveLength(1);
      for (const r of results.filter((r) => r.statusCode !== 200)) {
        expect(r.statusCode).toBe(400);
        expect(r.json()).toEqual(ALREADY_ACTIVATED);
      }
      const counts = await t.deps.database.db.execute(
        sql`select sum(referrals_count)::int as total from users`,
      );
      expect((counts as unknown as { rows: { total: number }[] }).rows[0]?.total).toBe(trial);
    }
  });

  it('two users activating each other at once: never both', async () => {
    t = await createTestApp({ backend });
    for (let round = 0; round < 2 * trials; round++) {
      const a = await signIn(t);
      const b = await signIn(t);
      const [ab, ba] = await Promise.all([
        activate(a, b.user.invite_code),
        activate(b, a.user.invite_code),
      ]);
      const statuses = [ab.statusCode, ba.statusCode].sort();
      expect(statuses).toEqual([200, 400]);
      expect([ab, ba].find((r) => r.statusCode === 400)?.json()).toEqual(CYCLE);
    }
  });

  it('a ring of users activating in a circle at once never closes the cycle', async () => {
    t = await createTestApp({ backend });
    for (const size of Array.from({ length: trials }, () => [3, 5]).flat()) {
      const ring = await Promise.all(Array.from({ length: size }, () => signIn(t)));
      const results = await Promise.all(
        ring.map((u, i) => activate(u, (ring[(i + 1) % size] as SignedIn).user.invite_code)),
      );
      const succeeded = results.filter((r) => r.statusCode === 200).length;
      expect(succeeded).toBe(size - 1);
      expect(results.find((r) => r.statusCode !== 200)?.json()).toEqual(CYCLE);
    }
    // The graph is still a forest: walking up from anyone ends at a root.
    const cyclic = await t.deps.database.db.execute(sql`
      with recursive walk(start_id, id, depth) as (
        select id, referrer_id, 1 from users where referrer_id is not null
        union all
        select w.start_id, u.referrer_id, w.depth + 1 from walk w join users u on u.id = w.id
        where u.referrer_id is not null and w.depth < 100
      )
      select count(*)::int as n from walk where id = start_id`);
    expect((cyclic as unknown as { rows: { n: number }[] }).rows[0]?.n).toBe(0);
  });

  it('three concurrent verifications with the right code yield one token', async () => {
    t = await createTestApp({ backend });
    for (let trial = 0; trial < trials; trial++) {
      const phone = nextPhone();
      const code = await requestCode(t, phone);
      const results = await Promise.all([
        verify(phone, code),
        verify(phone, code),
        verify(phone, code),
      ]);
      expect(results.filter((r) => r.statusCode === 200)).toHaveLength(1);
      for (const r of results.filter((r) => r.statusCode !== 200)) {
        expect(r.statusCode).toBe(400);
        expect(r.json()).toEqual({
          error: 'No valid code for this number. Request a new code.',
          code: 'code_expired',
        });
      }
    }
  });

  it('a burst of wrong guesses compares at most OTP_MAX_ATTEMPTS of them', async () => {
    t = await createTestApp({ backend });
    const phone = nextPhone();
    const code = await requestCode(t, phone);
    const wrong = Array.from({ length: 30 }, (_, i) => String(i).padStart(4, '0')).filter(
      (c) => c !== code,
    );
    const results = await Promise.all(wrong.map((c) => verify(phone, c)));
    expect(results.filter((r) => r.statusCode === 400)).toHaveLength(5);
    expect(results.filter((r) => r.statusCode === 429)).toHaveLength(wrong.length - 5);
    expect((await verify(phone, code)).statusCode).toBe(429);
  });

  it('two concurrent first sign-ins of one number create one user', async () => {
    t = await createTestApp({ backend });
    for (let round = 0; round < trials; round++) {
      const phone = nextPhone();
      // Two codes cannot be live at once, so the race is on user creation: test numbers give a fixed code.
      await t.close();
      t = await createTestApp({ backend, env: { TEST_PHONE_NUMBERS: `${phone}:4321` } });
      const [a, b] = await Promise.all([
        (async () => {
          await requestCode(t, phone);
          return verify(phone, '4321');
        })(),
        (async () => {
          await requestCode(t, phone);
          return verify(phone, '4321');
        })(),
      ]);
      const ok = [a, b].filter((r) => r.statusCode === 200).map((r) => r.json());
      expect(ok.length).toBeGreaterThanOrEqual(1);
      const rows = await t.deps.database.db.execute(
        sql`select count(*)::int as n from users where phone_number = ${phone}`,
      );
      expect((rows as unknown as { rows: { n: number }[] }).rows[0]?.n).toBe(1);
      if (ok.length === 2) {
        expect(ok[0].user.id).toBe(ok[1].user.id);
        expect([ok[0].is_new_user, ok[1].is_new_user].sort()).toEqual([false, true]);
      }
    }
  });

  it('user creation itself is atomic when two sign-ins pass verification together', async () => {
    t = await createTestApp({ backend });
    const { UserService } = await import('../../src/auth/user-service.js');
    const service = new UserService(t.deps.database, t.clock, t.deps.random);
    for (let round = 0; round < trials; round++) {
      const phone = nextPhone();
      const results = await Promise.all(
        Array.from({ length: 6 }, () => service.findOrCreate(phone)),
      );
      expect(new Set(results.map((r) => r.user.id)).size).toBe(1);
      expect(results.filter((r) => r.isNew)).toHaveLength(1);
    }
  });

  it('paging never skips or repeats a referral while new ones arrive', async () => {
    t = await createTestApp({ backend });
    const owner = await signIn(t);
    const first = await Promise.all(Array.from({ length: 10 }, () => signIn(t)));
    const later = await Promise.all(Array.from({ length: 10 }, () => signIn(t)));
    await Promise.all(first.map((u) => activate(u, owner.user.invite_code)));
    const seen: string[] = [];
    let cursor = '';
    const arrivals = later.slice();
    for (;;) {
      const joining = arrivals.splice(0, 3).map((u) => activate(u, owner.user.invite_code));
      const [page] = await Promise.all([
        t.app.inject({
          method: 'GET',
          url: `/api/profile/referrals/?limit=2&cursor=${encodeURIComponent(cursor)}`,
          headers: auth(owner.token),
        }),
        ...joining,
      ]);
      const body = (
        page as { json(): { results: { phone_number: string }[]; next_cursor: string | null } }
      ).json();
      seen.push(...body.results.map((r) => r.phone_number));
      if (body.next_cursor === null && arrivals.length === 0) {
        // One more look: arrivals of the last round may have landed after this page.
        const tail = await t.app.inject({
          method: 'GET',
          url: `/api/profile/referrals/?limit=100&cursor=${encodeURIComponent(cursor)}`,
          headers: auth(owner.token),
        });
        const rest = tail.json().results.map((r: { phone_number: string }) => r.phone_number);
        seen.push(...rest.filter((p: string) => !body.results.some((r) => r.phone_number === p)));
        break;
      }
      if (body.next_cursor !== null) cursor = body.next_cursor;
    }
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toHaveLength(20);
  });
}
