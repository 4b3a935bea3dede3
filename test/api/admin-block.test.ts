import { afterEach, describe, expect, it } from 'vitest';
import { composeServices } from '../../src/deps.js';
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

const TRIALS = 50;

// Two instances of one deployment, each with its own token cache, both warm:
// an admin action through one must hold on the other from its very next request.
describe.each(backends)('blocking across instances with warm caches (%s)', (backend) => {
  const apps: TestApp[] = [];
  afterEach(async () => {
    // The second instance first: on the embedded back-end it borrows the first one's storage.
    for (const t of apps.reverse()) await t.close();
    apps.length = 0;
  });

  const env = { OTP_RESEND_COOLDOWN_SECONDS: '0' };
  const deployment = async () => {
    const a = await createTestApp({ backend, env });
    apps.push(a);
    const b = await createTestApp({ shareWith: a, env });
    apps.push(b);
    return { a, b };
  };
  const get = (t: TestApp, who: SignedIn, url = '/api/profile/') =>
    t.app.inject({ method: 'GET', url, headers: auth(who.token) });
  const post = (t: TestApp, who: SignedIn, url: string) =>
    t.app.inject({ method: 'POST', url, headers: auth(who.token) });

  it(`a blocked user's next request through the other instance is a 401, in ${TRIALS} of ${TRIALS} trials`, async () => {
    const { a, b } = await deployment();
    const staff = await signInStaff(a);
    let stale = 0;
    for (let trial = 0; trial < TRIALS; trial++) {
      // Half the trials block through each instance and read through the other.
      const [acting, reading] = trial % 2 === 0 ? [a, b] : [b, a];
      const user = await signIn(a);
      const second = await signIn(b, user.user.phone_number);
      for (const t of [a, b]) {
        for (const token of [user, second]) {
          for (let warm = 0; warm < 2; warm++) expect((await get(t, token)).statusCode).toBe(200);
        }
      }
      const blocked = await post(acting, staff, `/api/admin/users/${user.user.id}/block/`);
      expect(blocked.statusCode).toBe(200);
      for (const token of [user, second]) {
        if ((await get(reading, token)).statusCode !== 401) stale += 1;
        if ((await get(reading, token, '/api/profile/referrals/')).statusCode !== 401) stale += 1;
      }
    }
    expect(stale).toBe(0);
  });

  it('revoked tokens are refused at once on the other instance, and stay refused after unblocking', async () => {
    const { a, b } = await deployment();
    const staff = await signInStaff(a);
    let stale = 0;
    for (let trial = 0; trial < 10; trial++) {
      const user = await signIn(a);
      for (const t of [a, b]) expect((await get(t, user)).statusCode).toBe(200);
      await post(a, staff, `/api/admin/users/${user.user.id}/revoke-tokens/`);
      if ((await get(b, user)).statusCode !== 401) stale += 1;
      const again = await signIn(b, user.user.phone_number);
      for (const t of [a, b]) expect((await get(t, again)).statusCode).toBe(200);
      await post(b, staff, `/api/admin/users/${user.user.id}/block/`);
      await post(a, staff, `/api/admin/users/${user.user.id}/unblock/`);
      for (const t of [a, b]) if ((await get(t, again)).statusCode !== 401) stale += 1;
    }
    expect(stale).toBe(0);
  });

  it('a code sent before the block signs in nowhere: 403 on the other instance', async () => {
    const { a, b } = await deployment();
    const staff = await signInStaff(a);
    const user = await signIn(a);
    const code = await requestCode(a, user.user.phone_number);
    await post(a, staff, `/api/admin/users/${user.user.id}/block/`);
    const refused = await b.app.inject({
      method: 'POST',
      url: '/api/auth/verify-code/',
      payload: { phone_number: user.user.phone_number, code },
    });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toEqual({ error: 'This account is blocked.', code: 'forbidden' });
  });

  it('an admin whose staff flag is revoked elsewhere (the CLI) loses access on their next request', async () => {
    const { a, b } = await deployment();
    const staff = await signInStaff(a);
    for (const t of [a, b]) {
      for (let warm = 0; warm < 2; warm++) {
        expect((await get(t, staff, '/api/admin/stats/')).statusCode).toBe(200);
      }
    }
    // A separate process on the same database and store, as the CLI is.
    const { config, database, store, clock, random, logger } = a.deps;
    const { admin } = composeServices({
      config: { ...config, CACHE_SIZE: 0, SIGN_IN_BATCHING: false },
      logger,
      clock,
      random,
      database,
      store,
    });
    await admin.setStaff(staff.user.id, false, { kind: 'cli' });

    for (const t of [a, b]) {
      const res = await get(t, staff, '/api/admin/stats/');
      expect(res.statusCode).toBe(403);
      expect(res.json()).toEqual({ error: 'This account is not an admin.', code: 'forbidden' });
      // Still a signed-in user.
      expect((await get(t, staff)).statusCode).toBe(200);
    }
    await admin.setStaff(staff.user.id, true, { kind: 'cli' });
    for (const t of [a, b]) expect((await get(t, staff, '/api/admin/stats/')).statusCode).toBe(200);
  });
});
