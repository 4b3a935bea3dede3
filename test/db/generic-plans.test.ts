import { afterEach, describe, expect, it } from 'vitest';
import { openPgliteInMemory } from '../../src/db/pglite.js';
import { signInStaff } from '../admin-helper.js';
import { WEBHOOK_SECRET } from '../events/receiver.js';
import { auth, createTestApp, nextPhone, requestCode, signIn, type TestApp } from '../helper.js';

/**
 * Each named statement keeps the plan it got when first run (PLAN_ONCE), and
 * on a fresh install that is on empty tables. A plan made there that scans a
 * table in whole is cheap then and grows slower with every row: the embedded
 * sign-in fell from thousands a second to hundreds that way, its users looked
 * up by a hash join over all of them. So every statement the service runs by
 * name is planned here as PostgreSQL plans it with no rows and no values
 * (EXPLAIN (GENERIC_PLAN), PGlite being PostgreSQL 18), and none may read a
 * growing table by a scan of it all.
 */
const GROWING_TABLES = ['users', 'api_tokens', 'audit_log', 'events', 'webhook_deliveries'];

// The admin list of users without a search reads user_totals, a table of a
// few counter rows that does not grow with users; every other table grows.
const WHOLE_SCAN = new RegExp(`Seq Scan on (${GROWING_TABLES.join('|')})\\b`);

type Exec = { exec(query: string): Promise<{ rows: Record<string, string>[] }[]> };

describe('the plans the statements keep (embedded)', () => {
  let t: TestApp;
  afterEach(async () => {
    await t?.close();
  });

  it('look rows up by an index, whatever the tables held when they were planned', async () => {
    t = await createTestApp({
      env: { CACHE_SIZE: '0', WEBHOOK_URLS: 'http://127.0.0.1:9/hook', WEBHOOK_SECRET },
      webhookWorker: 'manual',
    });
    const { database } = t.deps;
    const query = database.query.bind(database);
    const statements = new Map<string, string>();
    database.query = (name, text, params) => {
      statements.set(name, text);
      return query(name, text, params);
    };

    // What users, admins and the webhook worker do, each path once.
    const get = (url: string, token: string) =>
      t.app.inject({ method: 'GET', url, headers: auth(token) });
    const post = (url: string, token: string, payload?: object) =>
      t.app.inject({ method: 'POST', url, headers: auth(token), payload });
    const staff = await signInStaff(t);
    const a = await signIn(t);
    const b = await signIn(t);
    const guessed = nextPhone();
    await requestCode(t, guessed);
    await t.app.inject({
      method: 'POST',
      url: '/api/auth/verify-code/',
      payload: { phone_number: guessed, code: '0000' },
    });
    await post('/api/profile/', b.token, { invite_code: a.user.invite_code });
    await get('/api/profile/', a.token);
    await get('/api/profile/referrals/?limit=1', a.token);
    for (const q of ['', '?q=%2B7999', `?q=${a.user.invite_code}`, '?q=1234']) {
      await get(`/api/admin/users/${q}`, staff.token);
    }
    await get(`/api/admin/users/${a.user.id}/`, staff.token);
    await get(`/api/admin/users/${a.user.id}/referrals/`, staff.token);
    await get('/api/admin/stats/', staff.token);
    await get('/api/admin/audit/', staff.token);
    await get('/api/admin/events/', staff.token);
    await post(`/api/admin/users/${b.user.id}/block/`, staff.token);
    await requestCode(t, b.user.phone_number).catch(() => {});
    await post('/api/auth/logout/', a.token);
    await post('/api/auth/logout-all/', staff.token);
    await t.app.webhooks?.runOnce();
    expect([...statements.keys()]).toEqual(
      expect.arrayContaining([
        'sign_in',
        'audit_code_sent',
        'users_blocked_among',
        'profiles_of_tokens',
        'referrals_pages_of_tokens',
        'event_log',
        'webhook_claim',
      ]),
    );

    const empty = await openPgliteInMemory();
    try {
      await empty.migrate();
      const client = (empty.db as unknown as { $client: Exec }).$client;
      const scans: string[] = [];
      for (const [name, text] of statements) {
        const [result] = await client.exec(`explain (generic_plan, costs off) ${text}`);
        const plan = (result?.rows ?? []).map((row) => Object.values(row)[0]).join('\n');
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
