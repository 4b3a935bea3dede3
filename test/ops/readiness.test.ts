import { afterEach, describe, expect, it, vi } from 'vitest';
import { backends, createTestApp, type TestApp } from '../helper.js';

/**
 * /readyz names the backing store that does not answer. The real outages (a
 * cut or frozen connection to PostgreSQL or Redis) are in test/api/outage.test.ts;
 * here each probe is made to fail, on every backend, embedded included.
 */
describe.each(backends)('readiness at /readyz (%s)', (backend) => {
  let t: TestApp | undefined;
  afterEach(async () => {
    vi.restoreAllMocks();
    await t?.close();
    t = undefined;
  });

  const probe = async () => {
    const app = (t as TestApp).app;
    const [ready, alive] = await Promise.all([
      app.inject({ method: 'GET', url: '/readyz' }),
      app.inject({ method: 'GET', url: '/healthz' }),
    ]);
    // Liveness never depends on storage: a restart would not bring it back.
    expect(alive.statusCode).toBe(200);
    expect(alive.json()).toEqual({ status: 'ok' });
    return { status: ready.statusCode, body: ready.json() };
  };
  const down = () => Promise.reject(new Error('connection refused'));

  it('is ready when both answer', async () => {
    t = await createTestApp({ backend });
    expect(await probe()).toEqual({
      status: 200,
      body: { status: 'ok', database: 'ok', store: 'ok' },
    });
  });

  it('names the database when it does not answer, and recovers with it', async () => {
    t = await createTestApp({ backend });
    const ping = vi.spyOn(t.deps.database, 'ping').mockImplementation(down);
    expect(await probe()).toEqual({
      status: 503,
      body: { status: 'unavailable', database: 'unavailable', store: 'ok' },
    });
    ping.mockRestore();
    expect((await probe()).status).toBe(200);
  });

  it('names the store (Redis) when it does not answer, and recovers with it', async () => {
    t = await createTestApp({ backend });
    const ping = vi.spyOn(t.deps.store, 'ping').mockImplementation(down);
    expect(await probe()).toEqual({
      status: 503,
      body: { status: 'unavailable', database: 'ok', store: 'unavailable' },
    });
    ping.mockRestore();
    expect((await probe()).status).toBe(200);
  });

  it('names both when neither answers', async () => {
    t = await createTestApp({ backend });
    vi.spyOn(t.deps.database, 'ping').mockImplementation(down);
    vi.spyOn(t.deps.store, 'ping').mockImplementation(down);
    expect(await probe()).toEqual({
      status: 503,
      body: { status: 'unavailable', database: 'unavailable', store: 'unavailable' },
    });
  });

  it('answers 503 when a probe hangs, rather than hanging itself', async () => {
    t = await createTestApp({ backend });
    vi.spyOn(t.deps.database, 'ping').mockImplementation(() => new Promise<void>(() => {}));
    expect(await probe()).toEqual({
      status: 503,
      body: { status: 'unavailable', database: 'unavailable', store: 'ok' },
    });
  });
});
