import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type App, buildApp } from '../../src/app.js';
import { createSendLimiter } from '../../src/auth/create-send-limiter.js';
import { loadConfig } from '../../src/config.js';
import { type Database, openDatabase } from '../../src/db/client.js';
import type { Deps } from '../../src/deps.js';
import { cryptoRandom } from '../../src/lib/random.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { createTestDatabase, FakeClock, FakeSms, nextPhone } from '../helper.js';

/**
 * A TCP proxy that can be cut and restored, standing in for a database going
 * away, or frozen: connections stay open but nothing goes through, as when a
 * server hangs or the network drops packets without resetting anything.
 */
class CuttableProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private held: { to: Socket; chunk: Buffer }[] | null = null;
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async start(): Promise<void> {
    this.server = createServer((client) => {
      const upstream = connect(this.targetPort, this.targetHost);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      const forward = (to: Socket) => (chunk: Buffer) => {
        if (this.held) this.held.push({ to, chunk });
        else to.write(chunk);
      };
      client.on('data', forward(upstream));
      upstream.on('data', forward(client));
    });
    this.server.listen(this.port, '127.0.0.1');
    await once(this.server, 'listening');
    const address = this.server.address();
    if (address && typeof address === 'object') this.port = address.port;
  }

  freeze(): void {
    this.held = [];
  }

  thaw(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const { to, chunk } of held) if (!to.destroyed) to.write(chunk);
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise((resolve) => server.close(resolve));
  }
}

const enabled = Boolean(process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL);

describe.skipIf(!enabled)('PostgreSQL and Redis outages (postgres)', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
  });

  async function start(): Promise<{ app: App; pgProxy: CuttableProxy; redisProxy: CuttableProxy }> {
    const created = await createTestDatabase();
    cleanups.push(created.drop);
    const dbUrl = new URL(created.url);
    const redisUrl = new URL(process.env.TEST_REDIS_URL as string);
    const pgProxy = new CuttableProxy(dbUrl.hostname, Number(dbUrl.port || 5432));
    const redisProxy = new CuttableProxy(redisUrl.hostname, Number(redisUrl.port || 6379));
    await pgProxy.start();
    await redisProxy.start();
    cleanups.push(
      () => pgProxy.cut(),
      () => redisProxy.cut(),
    );
    dbUrl.host = `127.0.0.1:${pgProxy.port}`;
    redisUrl.host = `127.0.0.1:${redisProxy.port}`;
    const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', SMS_CONSOLE_DELAY_MS: '0' });
    const logger = pino({ level: 'silent' });
    const clock = new FakeClock();
    const database: Database = await openDatabase({
      url: dbUrl.toString(),
      dataDir: '',
      poolSize: 4,
      logger,
    });
    const store = await RedisStore.connect({
      url: redisUrl.toString(),
      logger,
      keyPrefix: `outage:${Date.now()}:`,
    });
    const deps: Deps = {
      config,
      logger,
      clock,
      random: cryptoRandom,
      database,
      store,
      sms: new FakeSms(),
      metrics: createMetrics(),
    };
    const app = await buildApp(deps, { limiter: createSendLimiter(deps) });
    cleanups.push(
      () => database.close(),
      () => store.close(),
      () => app.close(),
    );
    return { app, pgProxy, redisProxy };
  }

  const timed = async <T>(work: Promise<T>): Promise<{ value: T; ms: number }> => {
    const started = performance.now();
    const value = await work;
    return { value, ms: performance.now() - started };
  };

  async function eventually(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error('did not recover in time');
  }

  it('answers 503 while PostgreSQL is away, then recovers by itself', async () => {
    const { app, pgProxy } = await start();
    const phone = nextPhone();
    const code = (
      await app.inject({
        method: 'POST',
        url: '/api/auth/request-code/',
        payload: { phone_number: phone },
      })
    ).json().dev_code;
    const signedIn = await app.inject({
      method: 'POST',
      url: '/api/auth/verify-code/',
      payload: { phone_number: phone, code },
    });
    const token = signedIn.json().token as string;
    const headers = { authorization: `Token ${token}` };
    const profile = await app.inject({ method: 'GET', url: '/api/profile/', headers });
    expect(profile.statusCode).toBe(200);

    await pgProxy.cut();
    // A profile this instance has cached needs no database: nothing can change
    // it while PostgreSQL is away (every change goes through PostgreSQL).
    const cached = await app.inject({ method: 'GET', url: '/api/profile/', headers });
    expect(cached.statusCode).toBe(200);
    expect(cached.json()).toEqual(profile.json());
    // A read that needs the database fails fast.
    const { value: res, ms } = await timed(
      app.inject({ method: 'GET', url: '/api/profile/referrals/', headers }),
    );
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({
      error: 'Service temporarily unavailable. Try again shortly.',
      code: 'service_unavailable',
      retry_after: 5,
    });
    expect(res.headers['retry-after']).toBe('5');
    expect(ms).toBeLessThan(10_000);
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toEqual({ status: 'unavailable', database: 'unavailable', store: 'ok' });

    await pgProxy.start();
    await eventually(
      async () =>
        (await app.inject({ method: 'GET', url: '/api/profile/referrals/', headers }))
          .statusCode === 200,
    );
    expect((await app.inject({ method: 'GET', url: '/readyz' })).json()).toEqual({
      status: 'ok',
      database: 'ok',
      store: 'ok',
    });
  });

  it('answers 503 while Redis is away, then recovers by itself', async () => {
    const { app, redisProxy } = await start();
    const phone = nextPhone();
    const { dev_code: code } = (
      await app.inject({
        method: 'POST',
        url: '/api/auth/request-code/',
        payload: { phone_number: phone },
      })
    ).json();
    const { token } = (
      await app.inject({
        method: 'POST',
        url: '/api/auth/verify-code/',
        payload: { phone_number: phone, code },
      })
    ).json();
    const headers = { authorization: `Token ${token}` };
    const profile = () => app.inject({ method: 'GET', url: '/api/profile/', headers });
    expect((await profile()).statusCode).toBe(200);

    await redisProxy.cut();
    // Reads go on from PostgreSQL, past the cache, which cannot be checked now.
    expect((await profile()).statusCode).toBe(200);
    // A change cannot be announced to other instances' caches: it is refused, not half-done.
    const logout = await app.inject({ method: 'POST', url: '/api/auth/logout/', headers });
    expect(logout.statusCode).toBe(503);
    const request = () =>
      app.inject({
        method: 'POST',
        url: '/api/auth/request-code/',
        payload: { phone_number: nextPhone() },
      });
    const { value: res, ms } = await timed(request());
    expect(res.statusCode).toBe(503);
    expect(res.json().code).toBe('service_unavailable');
    expect(ms).toBeLessThan(10_000);
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.json()).toEqual({ status: 'unavailable', database: 'ok', store: 'unavailable' });
    await redisProxy.start();
    await eventually(async () => (await request()).statusCode === 200);
    expect((await profile()).statusCode).toBe(200);
  });

  it('answers 503 within seconds while Redis hangs with its connection open, then recovers', async () => {
    const { app, redisProxy } = await start();
    const request = () =>
      app.inject({
        method: 'POST',
        url: '/api/auth/request-code/',
        payload: { phone_number: nextPhone() },
      });
    expect((await request()).statusCode).toBe(200);

    redisProxy.freeze();
    cleanups.push(async () => redisProxy.thaw());
    // Nothing is refused or reset: only a bound on each command ends the wait.
    let deadline: NodeJS.Timeout | undefined;
    const noAnswer = new Promise<never>((_, reject) => {
      deadline = setTimeout(() => reject(new Error('no answer in 10 s while Redis hangs')), 10_000);
    });
    const { value: res, ms } = await timed(Promise.race([request(), noAnswer]));
    clearTimeout(deadline);
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({
      error: 'Service temporarily unavailable. Try again shortly.',
      code: 'service_unavailable',
      retry_after: 5,
    });
    expect(ms).toBeLessThan(10_000);
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.json()).toEqual({ status: 'unavailable', database: 'ok', store: 'unavailable' });

    redisProxy.thaw();
    await eventually(async () => (await request()).statusCode === 200);
  });
});
