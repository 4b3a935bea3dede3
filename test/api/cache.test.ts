import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { type KeyValueStore, StoreUnavailableError } from '../../src/store/key-value-store.js';
import { auth, backends, createTestApp, type SignedIn, signIn, type TestApp } from '../helper.js';

const TRIALS = 50;

// Two instances of one deployment (same database and store, each with its own
// in-memory cache): what one changes, the other must show on its next request.
describe.each(backends)('caches across instances (%s)', (backend) => {
  const apps: TestApp[] = [];
  afterEach(async () => {
    // The second instance first: on the embedded back-end it borrows the first one's storage.
    for (const t of apps.reverse()) await t.close();
    apps.length = 0;
  });

  // Signing in twice with one number needs no cooldown.
  const quick = { OTP_RESEND_COOLDOWN_SECONDS: '0' };
  const deployment = async (extra: Record<string, string> = {}) => {
    const env = { ...quick, ...extra };
    const a = await createTestApp({ backend, env });
    apps.push(a);
    const b = await createTestApp({ shareWith: a, env });
    apps.push(b);
    return { a, b };
  };
  const get = (t: TestApp, who: SignedIn, url = '/api/profile/') =>
    t.app.inject({ method: 'GET', url, headers: auth(who.token) });
  const post = (t: TestApp, who: SignedIn, url: string, payload?: object) =>
    t.app.inject({ method: 'POST', url, headers: auth(who.token), payload });

  it('a token revoked through one instance is refused by the other on its next request', async () => {
    const { a, b } = await deployment();
    const user = await signIn(a);
    const other = await signIn(a, user.user.phone_number);
    for (let i = 0; i < 3; i++) expect((await get(b, user)).statusCode).toBe(200);

    expect((await post(a, user, '/api/auth/logout/')).statusCode).toBe(200);

    const refused = await get(b, user);
    expect(refused.statusCode).toBe(401);
    expect(refused.json()).toEqual({
      error: 'Invalid, expired or revoked token.',
      code: 'invalid_token',
    });
    // The user's other token is untouched.
    expect((await get(b, other)).statusCode).toBe(200);
  });

  it('logout-all through one instance signs the user out of the other at once', async () => {
    const { a, b } = await deployment();
    const first = await signIn(a);
    const second = await signIn(a, first.user.phone_number);
    expect((await get(b, first)).statusCode).toBe(200);
    expect((await get(b, second)).statusCode).toBe(200);

    const res = await post(a, second, '/api/auth/logout-all/');
    expect(res.json()).toEqual({ success: true, revoked: 2 });

    expect((await get(b, first)).statusCode).toBe(401);
    expect((await get(b, second)).statusCode).toBe(401);
  });

  it("a new referral shows at once in the referrer's profile and pages on the other instance", async () => {
    const { a, b } = await deployment();
    const owner = await signIn(a);
    const referee = await signIn(a);
    const page = '/api/profile/referrals/?limit=10';
    expect((await get(b, owner)).json().referrals_count).toBe(0);
    expect((await get(b, owner, page)).json()).toEqual({
      count: 0,
      results: [],
      next_cursor: null,
    });
    expect((await get(b, referee)).json().activated_invite_code).toBeNull();

    const activated = await post(a, referee, '/api/profile/', {
      invite_code: owner.user.invite_code,
    });
    expect(activated.statusCode).toBe(200);

    const profile = (await get(b, owner)).json();
    expect(profile.referrals_count).toBe(1);
    expect(profile.referrals).toEqual([
      { phone_number: referee.user.phone_number, activated_at: a.clock.now().toISOString() },
    ]);
    expect((await get(b, owner, page)).json().results).toEqual(profile.referrals);
    expect((await get(b, referee)).json().activated_invite_code).toBe(owner.user.invite_code);
  });

  it(`no stale answer in ${TRIALS} trials of logout, a new referral and an activation with warm caches`, async () => {
    const { a, b } = await deployment();
    const stale = { revokedToken: 0, referrerProfile: 0, referrerPage: 0, activatedProfile: 0 };
    const page = '/api/profile/referrals/?limit=5';
    for (let trial = 0; trial < TRIALS; trial++) {
      // Half the trials write through each instance and read through the other.
      const [acting, reading] = trial % 2 === 0 ? [a, b] : [b, a];
      const [owner, referee, leaving] = [await signIn(a), await signIn(b), await signIn(a)];
      for (const t of [a, b]) {
        for (let warm = 0; warm < 2; warm++) {
          for (const who of [owner, referee, leaving]) {
            expect((await get(t, who)).statusCode).toBe(200);
          }
          expect((await get(t, owner, page)).json().count).toBe(0);
        }
      }

      expect((await post(acting, leaving, '/api/auth/logout/')).statusCode).toBe(200);
      const activated = await post(acting, referee, '/api/profile/', {
        invite_code: owner.user.invite_code,
      });
      expect(activated.statusCode).toBe(200);

      if ((await get(reading, leaving)).statusCode !== 401) stale.revokedToken += 1;
      if ((await get(reading, owner)).json().referrals_count !== 1) stale.referrerProfile += 1;
      if ((await get(reading, owner, page)).json().count !== 1) stale.referrerPage += 1;
      const own = (await get(reading, referee)).json();
      if (own.activated_invite_code !== owner.user.invite_code) stale.activatedProfile += 1;
    }
    expect(stale).toEqual({
      revokedToken: 0,
      referrerProfile: 0,
      referrerPage: 0,
      activatedProfile: 0,
    });
  });

  it('the answer of an activation shows it, with the profile cached just before', async () => {
    const { a } = await deployment();
    const owner = await signIn(a);
    const referee = await signIn(a);
    for (let warm = 0; warm < 2; warm++) {
      expect((await get(a, referee)).json().activated_invite_code).toBeNull();
    }

    const res = await post(a, referee, '/api/profile/', { invite_code: owner.user.invite_code });

    expect(res.statusCode).toBe(200);
    expect(res.json().profile.activated_invite_code).toBe(owner.user.invite_code);
  });

  it('reads racing activations on the other instance never miss one that has answered', async () => {
    const { a, b } = await deployment();
    const owner = await signIn(a);
    const referees = await Promise.all(Array.from({ length: 12 }, () => signIn(a)));
    let done = 0;
    const activations = referees.map(async (referee) => {
      const res = await post(a, referee, '/api/profile/', { invite_code: owner.user.invite_code });
      expect(res.statusCode).toBe(200);
      done += 1;
    });
    // Instance B reads all along; each answer must count at least the
    // activations that had answered before the read was sent.
    const reads = (async () => {
      while (done < referees.length) {
        const answeredBefore = done;
        const count = (await get(b, owner)).json().referrals_count;
        expect(count).toBeGreaterThanOrEqual(answeredBefore);
        // A cached read completes without I/O: let the activations run.
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await Promise.all([...activations, reads]);
    expect((await get(b, owner)).json().referrals_count).toBe(referees.length);
  });

  it('a remembered token still expires on time', async () => {
    const { a, b } = await deployment({ TOKEN_TTL_DAYS: '1' });
    const user = await signIn(a);
    expect((await get(b, user)).statusCode).toBe(200);
    a.clock.advance(86_400 - 1);
    expect((await get(b, user)).statusCode).toBe(200);
    a.clock.advance(1);
    expect((await get(b, user)).statusCode).toBe(401);
  });

  it('serves repeated reads from memory while nothing changed through the service', async () => {
    const { a } = await deployment();
    const owner = await signIn(a);
    const referee = await signIn(a);
    await post(a, referee, '/api/profile/', { invite_code: owner.user.invite_code });
    const before = (await get(a, owner)).json();
    expect(before.referrals).toHaveLength(1);
    // Behind the service's back: not seen while the user's version stands...
    await a.deps.database.db.execute(sql`update users set referrer_id = null`);
    expect((await get(a, owner)).json()).toEqual(before);
    // ...and seen once it is bumped (what README tells operators to do by hand).
    await a.deps.store.delete(`uv:{${owner.user.id}}:v`);
    expect((await get(a, owner)).json().referrals).toEqual([]);
  });

  it('a change made by hand in SQL is seen once the cached entries reach their age limit', async () => {
    const { a } = await deployment();
    const user = await signIn(a);
    expect((await get(a, user)).statusCode).toBe(200);
    await a.deps.database.db.execute(
      sql`update users set is_blocked = true where id = ${user.user.id}`,
    );
    a.clock.advance(59);
    expect((await get(a, user)).statusCode).toBe(200);
    a.clock.advance(2);
    expect((await get(a, user)).statusCode).toBe(401);
  });

  it('CACHE_SIZE=0 reads every request from the database', async () => {
    const { a } = await deployment({ CACHE_SIZE: '0' });
    const user = await signIn(a);
    expect((await get(a, user)).statusCode).toBe(200);
    await a.deps.database.db.execute(
      sql`update users set is_blocked = true where id = ${user.user.id}`,
    );
    expect((await get(a, user)).statusCode).toBe(401);
  });

  it('a write whose store fails after the commit leaves the user uncached, not stale', async () => {
    const a = await createTestApp({ backend, env: quick });
    apps.push(a);
    // This instance loses the store right after its commits: it cannot announce them.
    let failVersions = false;
    const b = await createTestApp({
      shareWith: a,
      env: quick,
      wrapStore: (store) => withFailingVersions(store, () => failVersions),
    });
    apps.push(b);
    const user = await signIn(a);
    const other = await signIn(a, user.user.phone_number);
    expect((await get(a, user)).statusCode).toBe(200);
    expect((await get(a, other)).statusCode).toBe(200);

    failVersions = true;
    // The token is revoked in the database: the answer is a success.
    expect((await post(b, user, '/api/auth/logout/')).statusCode).toBe(200);

    expect((await get(a, user)).statusCode).toBe(401);
    expect((await get(a, other)).statusCode).toBe(200);
    expect((await get(a, user)).statusCode).toBe(401);
  });
});

/** A store whose writes of new versions and of the end of writes fail, as if it went away. */
function withFailingVersions(store: KeyValueStore, failing: () => boolean): KeyValueStore {
  const fail = (key: string) => failing() && key.startsWith('uv:');
  return new Proxy(store, {
    get(target, property, receiver) {
      const original = Reflect.get(target, property, receiver);
      if (typeof original !== 'function') return original;
      if (property === 'set' || property === 'increment') {
        return (key: string, ...rest: unknown[]) => {
          // The raise before the commit goes through; what follows the commit fails.
          if (fail(key) && !(property === 'increment' && rest[1] === undefined)) {
            return Promise.reject(new StoreUnavailableError('Redis is unreachable: test'));
          }
          return original.call(target, key, ...rest);
        };
      }
      return original.bind(target);
    },
  });
}
