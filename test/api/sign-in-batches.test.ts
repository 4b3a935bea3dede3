import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { SignInBatcher } from '../../src/auth/sign-in-batcher.js';
import { type NewToken, UserService } from '../../src/auth/user-service.js';
import type { Database } from '../../src/db/client.js';
import {
  auth,
  backends,
  createTestApp,
  nextPhone,
  requestCode,
  scriptedRandom,
  signIn,
  type TestApp,
} from '../helper.js';

/** Records the numbers of every sign-in statement; `fail` makes the next one throw. */
function watchSignIns(database: Database) {
  const batches: string[][] = [];
  const watch = { batches, fail: undefined as Error | undefined };
  const query = database.query.bind(database);
  database.query = ((name: string, text: string, params: unknown[]) => {
    if (name === 'sign_in') {
      batches.push([...(params[0] as string[])]);
      const failure = watch.fail;
      watch.fail = undefined;
      if (failure) return Promise.reject(failure);
    }
    return query(name, text, params);
  }) as Database['query'];
  return watch;
}

const token = (byte: number): NewToken => ({ hash: Buffer.alloc(32, byte), expiresAt: null });
const randomToken = (): NewToken => ({ hash: randomBytes(32), expiresAt: null });

describe.each(backends)('sign-ins written together (%s)', (backend) => {
  let t: TestApp;
  afterEach(async () => {
    await t?.close();
  });

  const verify = (phone_number: string, code: string) =>
    t.app.inject({
      method: 'POST',
      url: '/api/auth/verify-code/',
      payload: { phone_number, code },
    });

  it('sign-ins verified together share a statement, and each gets its own user and token', async () => {
    t = await createTestApp({ backend, env: { OTP_RESEND_COOLDOWN_SECONDS: '0' } });
    const owner = await signIn(t);
    const returning = await signIn(t);
    await t.app.inject({
      method: 'POST',
      url: '/api/profile/',
      headers: auth(returning.token),
      payload: { invite_code: owner.user.invite_code },
    });
    const blocked = await signIn(t);
    await t.deps.database.db.execute(
      sql`update users set is_blocked = true where id = ${blocked.user.id}`,
    );
    const fresh = Array.from({ length: 5 }, () => nextPhone());
    const numbers = [...fresh, returning.user.phone_number, blocked.user.phone_number];
    const codes = await Promise.all(numbers.map((phone) => requestCode(t, phone)));
    const watch = watchSignIns(t.deps.database);

    const answers = await Promise.all(numbers.map((phone, i) => verify(phone, codes[i] as string)));

    expect(Math.max(...watch.batches.map((batch) => batch.length))).toBeGreaterThan(1);
    expect(watch.batches.flat().sort()).toEqual([...numbers].sort());
    const bodies = answers.map((answer) => answer.json());
    expect(answers.map((answer) => answer.statusCode)).toEqual([200, 200, 200, 200, 200, 200, 403]);
    expect(bodies[6]).toEqual({ error: 'This account is blocked.', code: 'forbidden' });
    expect(bodies.slice(0, 5).map((body) => body.is_new_user)).toEqual(Array(5).fill(true));
    expect(bodies[5]).toMatchObject({
      is_new_user: false,
      user: { id: returning.user.id, activated_invite_code: owner.user.invite_code },
    });
    const ids = bodies.slice(0, 6).map((body) => body.user.id);
    expect(new Set(ids).size).toBe(6);
    // Every token opens its own user's profile, and nobody else's.
    for (const [i, body] of bodies.slice(0, 6).entries()) {
      const profile = await t.app.inject({
        method: 'GET',
        url: '/api/profile/',
        headers: auth(body.token),
      });
      expect(profile.statusCode).toBe(200);
      expect(profile.json().phone_number).toBe(numbers[i]);
      expect(body.user.phone_number).toBe(numbers[i]);
    }
  });

  it('with SIGN_IN_BATCHING=false each sign-in is a statement of its own', async () => {
    t = await createTestApp({ backend, env: { SIGN_IN_BATCHING: 'false' } });
    const numbers = Array.from({ length: 4 }, () => nextPhone());
    const codes = await Promise.all(numbers.map((phone) => requestCode(t, phone)));
    const watch = watchSignIns(t.deps.database);

    const answers = await Promise.all(numbers.map((phone, i) => verify(phone, codes[i] as string)));

    expect(answers.map((answer) => answer.statusCode)).toEqual([200, 200, 200, 200]);
    expect(watch.batches.map((batch) => batch.length)).toEqual([1, 1, 1, 1]);
    expect(watch.batches.flat().sort()).toEqual([...numbers].sort());
  });

  it('one batch holds new and blocked users, a number twice and a drawn code that is taken', async () => {
    t = await createTestApp({ backend });
    const db = t.deps.database;
    const blocked = await signIn(t);
    await db.db.execute(sql`update users set is_blocked = true where id = ${blocked.user.id}`);
    const [first, second] = [nextPhone(), nextPhone()].sort() as [string, string];
    // Every number of the first statement draws 'AAAAAA'; the second new one
    // is drawn again alone and gets 'BBBBBB'.
    const draws = [...Array(18).fill(0), ...Array(6).fill(1)];
    const users = new SignInBatcher(new UserService(db, t.clock, scriptedRandom(draws)));
    const watch = watchSignIns(db);

    const [a, again, b, c] = await Promise.all([
      users.findOrCreate(first, token(1)),
      users.findOrCreate(first, token(2)),
      users.findOrCreate(second, token(3)),
      users.findOrCreate(blocked.user.phone_number, token(4)),
    ]);

    expect(watch.batches[0]?.sort()).toEqual([first, second, blocked.user.phone_number].sort());
    expect(a).toMatchObject({ isNew: true, user: { phoneNumber: first, inviteCode: 'AAAAAA' } });
    expect(again).toMatchObject({ isNew: false, user: { id: a.user.id, inviteCode: 'AAAAAA' } });
    expect(b).toMatchObject({ isNew: true, user: { phoneNumber: second, inviteCode: 'BBBBBB' } });
    expect(c).toMatchObject({ isNew: false, user: { id: blocked.user.id, isBlocked: true } });
    const tokens = await db.query<{ user_id: string | number; n: number }>(
      'test_tokens',
      'select user_id, count(*)::int as n from api_tokens where user_id = any($1) group by user_id',
      [[a.user.id, b.user.id, c.user.id]],
    );
    const count = new Map(tokens.map((row) => [Number(row.user_id), row.n]));
    expect([count.get(a.user.id), count.get(b.user.id)]).toEqual([2, 1]);
    // The blocked user keeps only the token of the sign-in made before the block.
    expect(count.get(c.user.id)).toBe(1);
  });

  // A race only on PostgreSQL: embedded instances share one engine, which runs one statement at a time.
  const raceOrSmoke = backend === 'postgres' ? 'race' : 'smoke test, not a race';
  it(`${raceOrSmoke}: two instances writing batches of the same new numbers create each user once`, async () => {
    t = await createTestApp({ backend });
    // On PostgreSQL a second instance with its own pool: the two batches race
    // on the same rows from separate connections, one given the numbers in
    // reverse. Sixty numbers make the statements overlap long enough that
    // batches not sorted by number deadlock here.
    const other = await createTestApp({ shareWith: t });
    try {
      const first = new SignInBatcher(new UserService(t.deps.database, t.clock, t.deps.random));
      const second = new SignInBatcher(
        new UserService(other.deps.database, other.clock, other.deps.random),
      );
      for (let round = 0; round < 3; round++) {
        const numbers = Array.from({ length: 60 }, () => nextPhone());
        const [mine, theirs] = await Promise.all([
          Promise.all(numbers.map((phone) => first.findOrCreate(phone, randomToken()))),
          Promise.all(
            [...numbers].reverse().map((phone) => second.findOrCreate(phone, randomToken())),
          ),
        ]);
        theirs.reverse();
        for (const [i, phone] of numbers.entries()) {
          const [a, b] = [mine[i], theirs[i]];
          expect(a?.user.phoneNumber).toBe(phone);
          expect(b?.user.id).toBe(a?.user.id);
          expect([a?.isNew, b?.isNew].filter(Boolean)).toHaveLength(1);
        }
        const [row] = await t.deps.database.query<{ users: number; tokens: number }>(
          'test_counts',
          `select count(*)::int as users,
             (select count(*)::int from api_tokens t join users u on u.id = t.user_id
              where u.phone_number = any($1)) as tokens
           from users where phone_number = any($1)`,
          [numbers],
        );
        expect(row).toEqual({ users: 60, tokens: 120 });
      }
    } finally {
      await other.close();
    }
  });

  it('a statement that fails fails every sign-in of its batch, and the next batch runs', async () => {
    t = await createTestApp({ backend });
    const users = new SignInBatcher(new UserService(t.deps.database, t.clock, t.deps.random));
    const watch = watchSignIns(t.deps.database);
    const failure = new Error('connection lost');
    watch.fail = failure;

    const results = await Promise.allSettled(
      Array.from({ length: 3 }, (_, i) => users.findOrCreate(nextPhone(), token(i))),
    );

    expect(results).toEqual(Array(3).fill({ status: 'rejected', reason: failure }));
    const next = await users.findOrCreate(nextPhone(), token(9));
    expect(next.isNew).toBe(true);
  }, 20_000);
});
