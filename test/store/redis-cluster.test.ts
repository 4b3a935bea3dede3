import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/db/client.js';
import { createDeps } from '../../src/deps.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { FakeClock, FakeSms, nextPhone } from '../helper.js';

const hasRedis = spawnSync('redis-server', ['--version']).status === 0;

/**
 * A real three-node Redis Cluster started for this file (when redis-server is
 * installed): the store must work when its keys live on different nodes.
 */
describe.skipIf(!hasRedis)('Redis Cluster', () => {
  const dir = mkdtempSync(join(tmpdir(), 'redis-cluster-'));
  const basePort = 21_000 + Math.floor(Math.random() * 5000);
  const ports = [basePort, basePort + 1, basePort + 2];
  const seeds = ports.map((p) => `redis://127.0.0.1:${p}`).join(',');
  let store: RedisStore;

  beforeAll(async () => {
    for (const port of ports) {
      execFileSync('redis-server', [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, `nodes-${port}.conf`),
        '--dir',
        dir,
        '--pidfile',
        join(dir, `${port}.pid`),
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'yes',
      ]);
    }
    await new Promise((r) => setTimeout(r, 500));
    execFileSync('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    for (let i = 0; i < 50; i++) {
      const info = execFileSync('redis-cli', [
        '-p',
        String(ports[0]),
        'cluster',
        'info',
      ]).toString();
      if (info.includes('cluster_state:ok')) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    store = await RedisStore.connect({ url: seeds, logger: pino({ level: 'silent' }) });
  }, 60_000);

  afterAll(async () => {
    await store?.close();
    // Only the servers this file started, by the ids they wrote.
    for (const port of ports) {
      try {
        process.kill(Number(readFileSync(join(dir, `${port}.pid`), 'utf8')), 'SIGTERM');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs every store operation on keys spread over all nodes', async () => {
    const keys = Array.from({ length: 30 }, (_, i) => `cluster-test:${i}`);
    await Promise.all(keys.map((k) => store.set(k, 'v', 60)));
    expect(await Promise.all(keys.map((k) => store.get(k)))).toEqual(keys.map(() => 'v'));
    expect(await Promise.all(keys.map((k) => store.increment(`${k}:n`, 60, 2)))).toEqual(
      keys.map(() => 2),
    );
    expect(await Promise.all(keys.map((k) => store.increment(`${k}:n`, 60)))).toEqual(
      keys.map(() => 3),
    );
    expect(await Promise.all(keys.map((k) => store.deleteIfEquals(k, 'other')))).toEqual(
      keys.map(() => false),
    );
    expect(await Promise.all(keys.map((k) => store.deleteIfEquals(k, 'v')))).toEqual(
      keys.map(() => true),
    );
    expect(await Promise.all(keys.map((k) => store.setIfAbsent(k, 'w', 60)))).toEqual(
      keys.map(() => true),
    );
    expect(await Promise.all(keys.map((k) => store.getAndDelete(k)))).toEqual(keys.map(() => 'w'));
    // Keys sharing a hash tag are read together from the node that holds them.
    await Promise.all(keys.map((k) => store.set(`v:{${k}}:b`, 'b', 60)));
    expect(await Promise.all(keys.map((k) => store.getMany([`v:{${k}}:a`, `v:{${k}}:b`])))).toEqual(
      keys.map(() => [null, 'b']),
    );
    const ttl = await store.ttlSeconds(`${keys[0]}:n`);
    expect(ttl).toBeGreaterThan(55);
    await store.ping();
    // The nodes really share the keys between them.
    const counts = ports.map((p) =>
      Number(
        execFileSync('redis-cli', ['-p', String(p), 'dbsize'])
          .toString()
          .trim(),
      ),
    );
    expect(counts.filter((n) => n > 0).length).toBeGreaterThan(1);
  });

  it('serves the sign-in flow and its limits on the cluster', async () => {
    const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', SMS_CONSOLE_DELAY_MS: '0' });
    const logger = pino({ level: 'silent' });
    const database = await openDatabase({ url: 'memory://', dataDir: '', poolSize: 1, logger });
    await database.migrate();
    const deps = await createDeps(config, {
      logger,
      clock: new FakeClock(),
      database,
      store,
      sms: new FakeSms(),
    });
    const app = await buildApp(deps);
    try {
      const phone = nextPhone();
      const first = await app.inject({
        method: 'POST',
        url: '/api/auth/request-code/',
        payload: { phone_number: phone },
      });
      expect(first.statusCode).toBe(200);
      const again = await app.inject({
        method: 'POST',
        url: '/api/auth/request-code/',
        payload: { phone_number: phone },
      });
      expect(again.statusCode).toBe(429);
      const verified = await app.inject({
        method: 'POST',
        url: '/api/auth/verify-code/',
        payload: { phone_number: phone, code: first.json().dev_code },
      });
      expect(verified.statusCode).toBe(200);
      // Cached reads and a logout: the user's cache version keys share a hash tag.
      const headers = { authorization: `Token ${verified.json().token}` };
      const profile = () => app.inject({ method: 'GET', url: '/api/profile/', headers });
      expect((await profile()).statusCode).toBe(200);
      expect((await profile()).statusCode).toBe(200);
      const logout = await app.inject({ method: 'POST', url: '/api/auth/logout/', headers });
      expect(logout.statusCode).toBe(200);
      expect((await profile()).statusCode).toBe(401);
      expect((await app.inject({ method: 'GET', url: '/readyz' })).json().store).toBe('ok');
    } finally {
      await app.close();
      await database.close();
    }
  }, 120_000);
});
