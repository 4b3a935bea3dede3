import { PGlite } from '@electric-sql/pglite';
import { afterEach, describe, expect, it } from 'vitest';
import { pgliteStartParams, wrapPglite } from '../../src/db/pglite.js';
import { signInStaff } from '../admin-helper.js';
import { Receiver, WEBHOOK_SECRET } from '../events/receiver.js';
import {
  auth,
  createTestApp,
  FakeClock,
  nextPhone,
  requestCode,
  signIn,
  type TestApp,
} from '../helper.js';

/**
 * Each named statement keeps the plan it got when first run (PLAN_ONCE), and
 * on a fresh install that is on empty tables. A plan made there that scans a
 * table in whole is cheap then and slower with every row: the embedded
 * sign-in statement did so twice over users, at 780 sign-ins a second where
 * it now makes 2,800. So every statement the service runs by name is planned
 * here as PostgreSQL plans it on a fresh install, with no values (EXPLAIN
 * (GENERIC_PLAN), PGlite being PostgreSQL 18; PostgreSQL 15 has no such
 * EXPLAIN), and none may read a growing table by a scan of it all. A read of
 * a whole index is not caught here; none of the statements has one.
 */
const GROWING_TABLES = ['users', 'api_tokens', 'audit_log', 'events', 'webhook_deliveries'];

// user_totals, which the admin's totals read in whole, is a few counter rows
// that do not grow with users.
const WHOLE_SCAN = new RegExp(`Seq Scan on (${GROWING_TABLES.join('|')})\\b`);

/**
 * The statements the service runs by name, each run below; of the admin's
 * searches (a statement per combination of terms, order and cursor) one of
 * each term, order and cursor.
 */
const NAMED_STATEMENTS = [
  'admin_recent_live',
  'admin_recent_minutes',
  'admin_search_a',
  'admin_search_cz',
  'admin_search_dz',
  'admin_search_pdz',
  'admin_search_z',
  'admin_search_zk',
  'admin_stats',
  'audit_code_sent',
  'authenticate_token',
  'event_log',
  'outbox_pending',
  'profile',
  'profiles_of_tokens',
  'referrals_pages_of_tokens',
  'sign_in',
  'users_blocked_among',
  'webhook_abandon',
  'webhook_claim',
  'webhook_delivered',
];

type Exec = { exec(query: string): Promise<{ rows: Record<string, string>[] }[]> };

describe('the plans the statements keep (embedded)', () => {
  let t: TestApp;
  let receiver: Receiver | undefined;
  afterEach(async () => {
    await t?.close();
    await receiver?.close();
  });

  it('look rows up by an index, planned on the tables of a fresh install', async () => {
    receiver = await Receiver.start(0);
    t = await createTestApp({
      env: { CACHE_SIZE: '0', WEBHOOK_URLS: receiver.url, WEBHOOK_SECRET },
      webhookWorker: 'manual',
      // The receiver checks the signature's time against its own clock.
      clock: new FakeClock(Date.now()),
    });
    const { database } = t.deps;
    const query = database.query.bind(database);
    const statements = new Map<string, string>();
    database.query = (name, text, params) => {
      statements.set(name, text);
      return query(name, text, params);
    };

    // What users, admins, the webhook worker and a metrics scrape do, each path once.
    const get = (url: string, token: string) =>
      t.app.inject({ method: 'GET', url, headers: auth(token) });
    const post = (url: string, token: string, payload?: object) =>
      t.app.inject({ method: 'POST', url, headers: auth(token), payload });
    const verify = (phone_number: string, code: string) =>
      t.app.inject({
        method: 'POST',
        url: '/api/auth/verify-code/',
        payload: { phone_number, code },
      });
    const staff = await signInStaff(t);
    const a = await signIn(t);
    const b = await signIn(t);
    const guessed = nextPhone();
    const code = await requestCode(t, guessed);
    const wrong = await verify(guessed, code === '0000' ? '1111' : '0000');
    expect(wrong.statusCode).toBe(400);
    expect(
      (await post('/api/profile/', b.token, { invite_code: a.user.invite_code })).statusCode,
    ).toBe(200);
    expect((await get('/api/profile/', a.token)).statusCode).toBe(200);
    expect((await get('/api/profile/referrals/?limit=1', a.token)).statusCode).toBe(200);
    const searches = [
      '',
      `?q=${encodeURIComponent(a.user.phone_number)}`,
      `?q=${a.user.invite_code}`,
      '?q=1234',
      '?sort=joined_at',
    ];
    for (const search of searches) {
      expect((await get(`/api/admin/users/${search}`, staff.token)).statusCode).toBe(200);
    }
    const first = await get('/api/admin/users/?limit=1', staff.token);
    const next = `/api/admin/users/?limit=1&cursor=${first.json().next_cursor}`;
    expect((await get(next, staff.token)).statusCode).toBe(200);
    for (const path of [
      `users/${a.user.id}/`,
      `users/${a.user.id}/referrals/`,
      'stats/',
      'audit/',
      'events/',
    ]) {
      expect((await get(`/api/admin/${path}`, staff.token)).statusCode).toBe(200);
    }
    expect((await post(`/api/admin/users/${b.user.id}/block/`, staff.token)).statusCode).toBe(200);
    t.clock.advance(60); // past the number's cooldown
    const blocked = await verify(b.user.phone_number, await requestCode(t, b.user.phone_number));
    expect(blocked.statusCode).toBe(403);
    expect((await post('/api/auth/logout/', a.token)).statusCode).toBe(200);
    expect((await post('/api/auth/logout-all/', staff.token)).statusCode).toBe(200);
    expect(await t.app.webhooks?.runOnce()).toBeGreaterThan(0);
    expect((await t.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
    expect([...statements.keys()].sort()).toEqual(NAMED_STATEMENTS);

    // A fresh install: the migrations alone, on a new engine.
    const client = await PGlite.create({ startParams: pgliteStartParams });
    const empty = wrapPglite(client, true);
    try {
      await empty.migrate();
      const scans: string[] = [];
      for (const [name, text] of statements) {
        const [result] = await (client as unknown as Exec).exec(
          `explain (generic_plan, costs off) ${text}`,
        );
        const plan = (result?.rows ?? []).map((row) => Object.values(row)[0]).join('\n');
        expect(plan, name).toMatch(/Scan|Result|Insert|Update/);
        for (const line of plan.split('\n').filter((line) => WHOLE_SCAN.test(line))) {
          scans.push(`${name}: ${line.trim()}`);
        }
      }
      expect(scans).toEqual([]);
    } finally {
      await empty.close();
    }
  });
});
