import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type App, buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { type Database, openDatabase } from '../../src/db/client.js';
import { createDeps } from '../../src/deps.js';
import { RedisStore } from '../../src/store/redis-store.js';
import {
  createTestDatabase,
  deleteTestKeys,
  FakeClock,
  FakeSms,
  newTestKeyPrefix,
  nextPhone,
} from '../helper.js';

/**
 * A TCP proxy that can be cut and restored, standing in for a database going
 * away, or frozen: connections stay open but nothing goes through, as when a
 * server hangs or the network drops packets without resetting anything. A
 * frozen proxy delivers what it held when thawed; a swallowing one drops it
 * (it takes every byte and answers nothing), so a connection that lived
 * through it never gets the answers to what it sent meanwhile.
 */
class CuttableProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private held: { to: Socket; chunk: Buffer }[] | null = null;
  private swallowing = false;
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
        if (this.swallowing) return;
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

  swallow(): void {
    this.swallowing = true;
  }

  /** Forwards again, on the connections that lived through the swallowing too. */
  forward(): void {
    this.swallowing = false;
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

  async function start(
    env: Record<string, string> = {},
  ): Promise<{ app: App; pgProxy: CuttableProxy; redisProxy: CuttableProxy }> {
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
    const config = loadConfig({
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      SMS_CONSOLE_DELAY_MS: '0',
      ...env,
    });
    const logger = pino({ level: 'silent' });
    const clock = new FakeClock();
    const database: Database = await openDatabase({
      url: dbUrl.toString(),
      dataDir: '',
      poolSize: 4,
      logger,
    });
    const keyPrefix = newTestKeyPrefix();
    cleanups.push(() => deleteTestKeys(`${keyPrefix}*`));
    const store = await RedisStore.connect({ url: redisUrl.toString(), logger, keyPrefix });
    const deps = await createDeps(config, {
      logger,
      clock,
      database,
      store,
      sms: new FakeSms(),
    });
    const app = await buildApp(deps);
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

  it('answers 503 within seconds while PostgreSQL stalls, then recovers by itself', async () => {
    const { app, pgProxy } = await start();
    const requestCode = async (phone: string) =>
      (
        await app.inject({
          method: 'POST',
          url: '/api/auth/request-code/',
          payload: { phone_number: phone },
        })
      ).json().dev_code as string;
    const verify = (phone: string, code: string) =>
      app.inject({
        method: 'POST',
        url: '/api/auth/verify-code/',
        payload: { phone_number: phone, code },
      });
    const signedIn = async () => {
      const phone = nextPhone();
      return (await verify(phone, await requestCode(phone))).json();
    };
    const users = [];
    for (let i = 0; i < 7; i++) users.push(await signedIn());
    const [owner, ...referees] = users;
    const profile = () =>
      app.inject({
        method: 'GET',
        url: '/api/profile/',
        headers: { authorization: `Token ${owner.token}` },
      });
    const activate = (user: { token: string }) =>
      app.inject({
        method: 'POST',
        url: '/api/profile/',
        headers: { authorization: `Token ${user.token}` },
        payload: { invite_code: owner.user.invite_code },
      });
    const newPhone = nextPhone();
    const newCode = await requestCode(newPhone);
    // The referees' tokens are cached now, so their activations go straight to
    // their transactions; the owner's profile, never read, needs PostgreSQL.
    for (const referee of referees) {
      const own = await app.inject({
        method: 'GET',
        url: '/api/profile/',
        headers: { authorization: `Token ${referee.token}` },
      });
      expect(own.statusCode).toBe(200);
    }

    // All four connections of the pool open and idle.
    await Promise.all(referees.map(() => app.inject({ method: 'GET', url: '/readyz' })));

    pgProxy.freeze();
    cleanups.push(async () => pgProxy.thaw());
    // The activations take the pool's four connections (their transactions
    // stall at BEGIN) and wait for one; the rest wait for one too.
    const during = await Promise.all([
      ...referees.map((referee) => timed(activate(referee))),
      timed(profile()),
      timed(verify(newPhone, newCode)),
    ]);
    for (const { value: res, ms } of during) {
      expect(res.statusCode, res.body).toBe(503);
      expect(res.json()).toEqual({
        error: 'Service temporarily unavailable. Try again shortly.',
        code: 'service_unavailable',
        retry_after: 5,
      });
      // Waits are bounded at 3 s for a connection and 3 s for a statement.
      expect(ms).toBeLessThan(8000);
    }

    pgProxy.thaw();
    await eventually(async () => (await profile()).statusCode === 200);
    // Every connection came back to the pool: all of them serve at once.
    const after = await Promise.all(referees.map((referee) => activate(referee)));
    expect(after.map((res) => res.statusCode)).toEqual(referees.map(() => 200));
    expect((await profile()).json().referrals_count).toBe(referees.length);
    const phone = nextPhone();
    expect((await verify(phone, await requestCode(phone))).statusCode).toBe(200);
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

  it('replaces a Redis connection that swallowed commands, without a restart', async () => {
    const { app, redisProxy } = await start();
    const request = () =>
      app.inject({
        method: 'POST',
        url: '/api/auth/request-code/',
        payload: { phone_number: nextPhone() },
      });
    expect((await request()).statusCode).toBe(200);

    redisProxy.swallow();
    cleanups.push(async () => redisProxy.forward());
    let deadline: NodeJS.Timeout | undefined;
    const noAnswer = new Promise<never>((_, reject) => {
      deadline = setTimeout(
        () => reject(new Error('no answer in 10 s while Redis swallows')),
        10_000,
      );
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

    // Forwarding again, through the same open connection: the answers to what
    // was swallowed never come, so that connection's replies would stay one
    // behind its commands for ever. It has to be replaced.
    redisProxy.forward();
    await eventually(async () => (await request()).statusCode === 200);
    expect((await app.inject({ method: 'GET', url: '/readyz' })).json()).toEqual({
      status: 'ok',
      database: 'ok',
      store: 'ok',
    });
  });
});
