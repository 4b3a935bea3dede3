import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { signInStaff } from '../admin-helper.js';
import {
  auth,
  backends,
  createTestApp,
  FakeClock,
  nextPhone,
  type SignedIn,
  signIn,
  type TestApp,
  type TestAppOptions,
} from '../helper.js';
import { Receiver, WEBHOOK_SECRET } from './receiver.js';

/** This file's receivers listen on 41610-41629 (the events worktree's range). */
const PORT = 41610;

type Delivery = {
  url: string;
  state: string;
  attempts: number;
  last_error: string | null;
  last_attempt_at: string | null;
  next_attempt_at: string | null;
  delivered_at: string | null;
};
type Event = {
  id: number;
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
  deliveries: Delivery[];
};

describe.each(backends)('events and webhooks (%s)', (backend) => {
  const apps: TestApp[] = [];
  const receivers: Receiver[] = [];
  afterEach(async () => {
    // Second instances first: they hold no storage of their own on the embedded back-end.
    for (const app of apps.splice(0).reverse()) await app.close();
    for (const receiver of receivers.splice(0)) await receiver.close();
  });

  const receiver = async (port = PORT) => {
    const started = await Receiver.start(port);
    receivers.push(started);
    return started;
  };
  // Now, not the helper's fixed date: receivers check that a signature's timestamp is recent.
  const makeApp = async (urls: string[], options: TestAppOptions = {}) => {
    const t = await createTestApp({
      backend,
      clock: options.shareWith ? undefined : new FakeClock(Date.now()),
      env: {
        OTP_RESEND_COOLDOWN_SECONDS: '0',
        ...(urls.length > 0 ? { WEBHOOK_URLS: urls.join(','), WEBHOOK_SECRET } : {}),
        ...options.env,
      },
      webhookWorker: 'manual',
      ...(options.shareWith ? { shareWith: options.shareWith } : {}),
    });
    apps.push(t);
    return t;
  };
  /** Runs the worker until nothing is due. */
  const drain = async (t: TestApp) => {
    let total = 0;
    for (let n = await runOnce(t); n > 0; n = await runOnce(t)) total += n;
    return total;
  };
  const runOnce = (t: TestApp) =>
    (t.app.webhooks as NonNullable<TestApp['app']['webhooks']>).runOnce();
  const eventLog = async (t: TestApp, staff: SignedIn, query = '') => {
    const res = await t.app.inject({
      method: 'GET',
      url: `/api/admin/events/?limit=1000${query}`,
      headers: auth(staff.token),
    });
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as { results: Event[]; next_after: number; has_more: boolean };
  };
  const eventOf = async (t: TestApp, staff: SignedIn, userId: number) => {
    const { results } = await eventLog(t, staff);
    const found = results.find((e) => e.type === 'user.created' && e.data.id === userId);
    expect(found, `user.created of ${userId}`).toBeDefined();
    return found as Event;
  };
  const activate = (t: TestApp, who: SignedIn, invite_code: string) =>
    t.app.inject({
      method: 'POST',
      url: '/api/profile/',
      headers: auth(who.token),
      payload: { invite_code },
    });
  const metricsText = async (t: TestApp) =>
    (await t.app.inject({ method: 'GET', url: '/metrics' })).body;

  it('delivers user.created and invite.activated, signed, in the shapes of SPEC 6', async () => {
    const hook = await receiver();
    const t = await makeApp([hook.url]);
    const joinedAt = t.clock.now().toISOString();
    const referrer = await signIn(t);
    const referee = await signIn(t);
    const activated = await activate(t, referee, referrer.user.invite_code.toLowerCase());
    expect(activated.statusCode, activated.body).toBe(200);

    expect(await drain(t)).toBe(3);
    expect(hook.rejected).toBe(0);
    const user = (who: SignedIn) => ({
      id: who.user.id,
      phone_number: who.user.phone_number,
      invite_code: who.user.invite_code,
      joined_at: joinedAt,
    });
    expect(hook.ofType('user.created').map((p) => p.data)).toEqual([user(referrer), user(referee)]);
    const [activation] = hook.ofType('invite.activated');
    expect(activation?.data).toEqual({
      referrer: user(referrer),
      referee: user(referee),
      invite_code: referrer.user.invite_code,
      activated_at: joinedAt,
      // Both signed up from 127.0.0.1 (app.inject): the activation's fraud flag travels with it.
      flags: ['same_ip'],
    });
    for (const { webhookId, payload } of hook.received) {
      expect(webhookId).toBe(String(payload.id));
      expect(payload.timestamp).toBe(joinedAt);
      expect(Object.keys(payload)).toEqual(['id', 'type', 'timestamp', 'data']);
    }

    const staff = await signInStaff(t);
    const { results } = await eventLog(t, staff);
    expect(results.map((e) => e.type)).toEqual([
      'user.created',
      'user.created',
      'invite.activated',
      'user.created',
    ]);
    expect(results[2]).toMatchObject({ id: activation?.id, data: activation?.data });
    expect(results[0]?.deliveries).toEqual([
      {
        url: hook.url,
        state: 'delivered',
        attempts: 1,
        last_error: null,
        last_attempt_at: joinedAt,
        next_attempt_at: null,
        delivered_at: joinedAt,
      },
    ]);
    expect(results[3]?.deliveries[0]).toMatchObject({ state: 'pending', attempts: 0 });
    const metrics = await metricsText(t);
    expect(metrics).toContain('webhook_deliveries_total{result="delivered"} 3');
    expect(metrics).toMatch(/^outbox_pending 1$/m);
  });

  it('records events without WEBHOOK_URLS, and none for a refused activation', async () => {
    const t = await makeApp([]);
    expect(t.app.webhooks).toBeNull();
    const staff = await signInStaff(t);
    const other = await signIn(t);
    for (const code of [other.user.invite_code, 'ZZZZZZ']) {
      expect((await activate(t, other, code)).statusCode).toBe(400);
    }
    expect((await activate(t, other, staff.user.invite_code)).statusCode).toBe(200);
    expect((await activate(t, staff, other.user.invite_code)).statusCode).toBe(400);
    const { results, next_after, has_more } = await eventLog(t, staff);
    expect(results.map((e) => [e.type, e.deliveries])).toEqual([
      ['user.created', []],
      ['user.created', []],
      ['invite.activated', []],
    ]);
    expect({ next_after, has_more }).toEqual({ next_after: results[2]?.id, has_more: false });
    expect(await metricsText(t)).toMatch(/^outbox_pending 0$/m);
  });

  it('pages the event log by after and limit; bad ones are 400s; staff only', async () => {
    const t = await makeApp([]);
    const staff = await signInStaff(t);
    for (let i = 0; i < 4; i++) await signIn(t);
    const first = await eventLog(t, staff);
    expect(first.results).toHaveLength(5);
    const page = await t.app.inject({
      method: 'GET',
      url: '/api/admin/events/?limit=2',
      headers: auth(staff.token),
    });
    const one = page.json() as { results: Event[]; next_after: number; has_more: boolean };
    expect(one.results.map((e) => e.id)).toEqual(first.results.slice(0, 2).map((e) => e.id));
    expect(one.has_more).toBe(true);
    const two = await eventLog(t, staff, `&after=${one.next_after}`);
    expect(two.results.map((e) => e.id)).toEqual(first.results.slice(2).map((e) => e.id));
    expect(two.has_more).toBe(false);

    for (const query of [
      'after=-1',
      'after=abc',
      'after=1e309',
      'limit=0',
      'limit=1001',
      'limit=x',
    ]) {
      const res = await t.app.inject({
        method: 'GET',
        url: `/api/admin/events/?${query}`,
        headers: auth(staff.token),
      });
      expect(res.statusCode, query).toBe(400);
      const field = query.split('=')[0] as string;
      expect(res.json(), query).toMatchObject({ code: 'validation_error' });
      expect(Object.keys(res.json().fields ?? {}), query).toContain(field);
    }
    const user = await signIn(t);
    const forbidden = await t.app.inject({
      method: 'GET',
      url: '/api/admin/events/',
      headers: auth(user.token),
    });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json()).toEqual({ error: 'This account is not an admin.', code: 'forbidden' });
  });

  it('retries with back-off on the fake clock, then delivers', async () => {
    const hook = await receiver();
    const t = await makeApp([hook.url]);
    const staff = await signInStaff(t);
    await drain(t);
    hook.status = 500;
    const user = await signIn(t);
    expect(await drain(t)).toBe(1);
    let event = await eventOf(t, staff, user.user.id);
    const started = t.clock.now().getTime();
    const due = (e: Event) => Date.parse(e.deliveries[0]?.next_attempt_at ?? '') - started;
    expect(event.deliveries[0]).toMatchObject({
      state: 'pending',
      attempts: 1,
      last_error: 'HTTP 500',
    });
    expect(due(event)).toBeGreaterThanOrEqual(4000);
    expect(due(event)).toBeLessThanOrEqual(6000);
    expect(await drain(t), 'not due yet').toBe(0);

    t.clock.advance(6);
    expect(await drain(t)).toBe(1);
    event = await eventOf(t, staff, user.user.id);
    expect(event.deliveries[0]?.attempts).toBe(2);
    expect(due(event)).toBeGreaterThanOrEqual(6000 + 24_000);
    expect(due(event)).toBeLessThanOrEqual(6000 + 36_000);

    hook.status = 200;
    t.clock.advance(36);
    expect(await drain(t)).toBe(1);
    event = await eventOf(t, staff, user.user.id);
    expect(event.deliveries[0]).toMatchObject({
      state: 'delivered',
      attempts: 3,
      last_error: null,
      next_attempt_at: null,
    });
    expect(hook.counts().get(String(event.id))).toBe(3);
    const metrics = await metricsText(t);
    expect(metrics).toContain('webhook_deliveries_total{result="retried"} 2');
    expect(metrics).toContain('webhook_deliveries_total{result="delivered"} 2');
  });

  it('gives up after 24 hours of failures and marks the delivery failed', async () => {
    const hook = await receiver();
    const t = await makeApp([hook.url]);
    const staff = await signInStaff(t);
    await drain(t);
    hook.status = 503;
    const user = await signIn(t);
    const created = t.clock.now().getTime();
    let event = await eventOf(t, staff, user.user.id);
    // Steps of 72 minutes, the longest hourly delay with jitter: every step is due.
    for (let step = 0; step < 40 && event.deliveries[0]?.state === 'pending'; step++) {
      await drain(t);
      t.clock.advance(72 * 60);
      event = await eventOf(t, staff, user.user.id);
    }
    const delivery = event.deliveries[0] as Delivery;
    expect(delivery).toMatchObject({ state: 'failed', next_attempt_at: null, delivered_at: null });
    // Signatures an hour old are refused by the receiver (400): an error all the same.
    expect(delivery.last_error).toMatch(/^HTTP (503|400)$/);
    expect(delivery.attempts).toBeGreaterThanOrEqual(18);
    // Given up at the attempt after which the next would fall past 24 hours, not before.
    const lastAttempt = Date.parse(delivery.last_attempt_at ?? '') - created;
    expect(lastAttempt).toBeLessThanOrEqual(24 * 3600_000);
    expect(lastAttempt).toBeGreaterThan((24 - 2 * 1.2) * 3600_000);
    expect(hook.requests).toBe(delivery.attempts + 1);
    t.clock.advance(7200);
    expect(await drain(t), 'a failed delivery is never tried again').toBe(0);
    const metrics = await metricsText(t);
    expect(metrics).toContain('webhook_deliveries_total{result="failed"} 1');
    expect(metrics).toMatch(/^outbox_pending 0$/m);
  });

  it('a delivery to a URL taken out of WEBHOOK_URLS is never made, and failed after 24 hours', async () => {
    const hook = await receiver(PORT + 5);
    const gone = `http://127.0.0.1:${PORT + 6}/gone`;
    const before = await makeApp([hook.url, gone]);
    const staff = await signInStaff(before);
    // The same deployment, restarted without the second URL.
    const after = await makeApp([hook.url], { shareWith: before });
    expect(await drain(after)).toBe(1);
    const stateOf = async () => {
      const event = await eventOf(after, staff, staff.user.id);
      return event.deliveries.find((d) => d.url === gone) as Delivery;
    };
    expect(await stateOf()).toMatchObject({ state: 'pending', attempts: 0 });
    // Not sooner: an instance still on the old list may yet deliver it.
    after.clock.advance(23 * 3600);
    await drain(after);
    expect(await stateOf()).toMatchObject({ state: 'pending', attempts: 0 });
    after.clock.advance(2 * 3600);
    await drain(after);
    expect(await stateOf()).toMatchObject({
      state: 'failed',
      attempts: 0,
      last_error: 'the URL is no longer in WEBHOOK_URLS',
    });
    expect(hook.requests).toBe(1);
  });

  it('a receiver that is down, then up, gets the event', async () => {
    const port = PORT + 1;
    const url = `http://127.0.0.1:${port}/hook`;
    const t = await makeApp([url]);
    const staff = await signInStaff(t);
    expect(await drain(t)).toBe(1);
    let event = await eventOf(t, staff, staff.user.id);
    expect(event.deliveries[0]).toMatchObject({ state: 'pending', last_error: 'ECONNREFUSED' });

    const hook = await receiver(port);
    t.clock.advance(6);
    expect(await drain(t)).toBe(1);
    event = await eventOf(t, staff, staff.user.id);
    expect(event.deliveries[0]).toMatchObject({ state: 'delivered', attempts: 2 });
    expect(hook.ofType('user.created').map((p) => p.data.id)).toEqual([staff.user.id]);
  });

  it('a claim whose instance died is made again once its lease runs out', async () => {
    const hook = await receiver();
    const t = await makeApp([hook.url]);
    const user = await signIn(t);
    // What an instance killed mid-attempt leaves: a claim with a lease, never settled.
    const leaseEnd = new Date(t.clock.now().getTime() + 60_000);
    await t.deps.database.db.execute(
      sql`update webhook_deliveries set claim = 'dead', attempts = 1, next_attempt_at = ${leaseEnd.toISOString()}`,
    );
    t.clock.advance(59);
    expect(await drain(t)).toBe(0);
    t.clock.advance(2);
    expect(await drain(t)).toBe(1);
    expect(hook.ofType('user.created').map((p) => p.data.id)).toEqual([user.user.id]);
    const staff = await signInStaff(t);
    expect((await eventOf(t, staff, user.user.id)).deliveries[0]).toMatchObject({
      state: 'delivered',
      attempts: 2,
    });
  });

  it('two instances share the deliveries: none lost, none twice', async () => {
    const hook = await receiver();
    const one = await makeApp([hook.url]);
    const two = await makeApp([hook.url], { shareWith: one });
    const users = await Promise.all(
      Array.from({ length: 40 }, (_, i) => signIn(i % 2 === 0 ? one : two, nextPhone())),
    );
    const [a, b] = await Promise.all([drain(one), drain(two)]);
    expect((a as number) + (b as number)).toBe(40);
    const counts = hook.counts();
    expect(counts.size).toBe(40);
    expect(
      [...counts.values()].filter((n) => n > 1),
      'duplicates',
    ).toEqual([]);
    expect(new Set(hook.ofType('user.created').map((p) => p.data.id))).toEqual(
      new Set(users.map((u) => u.user.id)),
    );
  });

  it('an instance closed mid-attempt releases it, and another instance delivers it', async () => {
    const hook = await receiver();
    const survivor = await makeApp([hook.url]);
    const closing = await makeApp([hook.url], {
      shareWith: survivor,
      env: { SHUTDOWN_TIMEOUT_SECONDS: '1' },
    });
    apps.pop();
    const staff = await signInStaff(survivor);
    hook.hold = true;
    const attempt = runOnce(closing);
    while (hook.requests === 0) await new Promise((r) => setTimeout(r, 10));
    await closing.close();
    expect(await attempt).toBe(1);
    let event = await eventOf(survivor, staff, staff.user.id);
    expect(event.deliveries[0]).toMatchObject({
      state: 'pending',
      attempts: 1,
      last_error: 'released at shutdown',
      next_attempt_at: survivor.clock.now().toISOString(),
    });
    hook.hold = false;
    expect(await drain(survivor)).toBe(1);
    event = await eventOf(survivor, staff, staff.user.id);
    expect(event.deliveries[0]).toMatchObject({ state: 'delivered', attempts: 2 });
  });
});
