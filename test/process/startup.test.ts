import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { LOCK_FILE_NAME } from '../../src/db/data-dir-lock.js';
import { createTestDatabase } from '../helper.js';
import {
  freePort,
  killAll,
  type LogLine,
  type NodeProcess,
  root,
  runNode,
  signIn,
  startService,
  stop,
  waitForLogLine,
  waitUntilReady,
} from './service-process.js';

const databaseUrl = process.env.TEST_DATABASE_URL;
const redisUrl = process.env.TEST_REDIS_URL;
const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'referral-startup-'));
  dirs.push(dir);
  return dir;
}
const quiet = { SMS_CONSOLE_DELAY_MS: '0' };

afterEach(killAll);
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The one line a failed start-up writes to stderr, with its number of tries. */
function expectOneLine(process: NodeProcess, pattern: RegExp): RegExpMatchArray {
  const match = process.stderr().match(pattern);
  expect(match, process.stderr()).not.toBeNull();
  return match as RegExpMatchArray;
}

const retries = (process: NodeProcess, variable: string): LogLine[] =>
  process.logLines().filter((line) => line.variable === variable && line.level === 40);

describe('start-up when PostgreSQL or Redis does not answer', () => {
  it('PostgreSQL on a port nothing listens on: each try logged, then one line naming DATABASE_URL, no password', async () => {
    const port = await freePort();
    const service = await startService({
      DATABASE_URL: `postgres://postgres:s3cret-Pw@127.0.0.1:${port}/app`,
      STARTUP_TIMEOUT_SECONDS: '2',
    });

    expect(await service.exited).toBe(1);
    const [, tries] = expectOneLine(
      service,
      new RegExp(
        `^DATABASE_URL: PostgreSQL at postgres://postgres:\\*\\*\\*@127\\.0\\.0\\.1:${port}/app is not reachable within STARTUP_TIMEOUT_SECONDS=2 \\((\\d+) tries\\): connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\n$`,
      ),
    );
    // Every try but the last is logged, with when the next one comes.
    expect(Number(tries)).toBeGreaterThanOrEqual(2);
    const logged = retries(service, 'DATABASE_URL');
    expect(logged).toHaveLength(Number(tries) - 1);
    expect(logged[0]).toMatchObject({
      try: 1,
      retryInMs: 500,
      cause: `connect ECONNREFUSED 127.0.0.1:${port}`,
      msg: `PostgreSQL at postgres://postgres:***@127.0.0.1:${port}/app (DATABASE_URL) is not reachable yet: connect ECONNREFUSED 127.0.0.1:${port}; retrying in 0.5 s`,
    });
    expect(service.stdout() + service.stderr()).not.toContain('s3cret-Pw');
  });

  it.runIf(databaseUrl)(
    'a PostgreSQL database that does not exist: the same, with its cause',
    async () => {
      const url = new URL(databaseUrl as string);
      url.pathname = `/missing_${randomBytes(4).toString('hex')}`;
      const service = runNode('dist/db/migrate-cli.js', {
        DATABASE_URL: url.toString(),
        STARTUP_TIMEOUT_SECONDS: '2',
      });

      expect(await service.exited).toBe(1);
      const name = url.pathname.slice(1);
      const [, tries] = expectOneLine(
        service,
        new RegExp(
          `^DATABASE_URL: PostgreSQL at postgres://[^ ]*/${name} is not reachable within STARTUP_TIMEOUT_SECONDS=2 \\((\\d+) tries\\): database "${name}" does not exist\\n$`,
        ),
      );
      expect(retries(service, 'DATABASE_URL')).toHaveLength(Number(tries) - 1);
    },
  );

  it('Redis on a port nothing listens on: one line naming REDIS_URL; the embedded database is closed again', async () => {
    const port = await freePort();
    const dataDir = tempDir();
    const service = await startService({
      DATA_DIR: dataDir,
      REDIS_URL: `redis://:r3dis-Pw@127.0.0.1:${port}/4`,
      STARTUP_TIMEOUT_SECONDS: '2',
    });

    expect(await service.exited).toBe(1);
    const [, tries] = expectOneLine(
      service,
      new RegExp(
        `^REDIS_URL: Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}/4 is not reachable within STARTUP_TIMEOUT_SECONDS=2 \\((\\d+) tries\\): connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\n$`,
      ),
    );
    expect(retries(service, 'REDIS_URL')).toHaveLength(Number(tries) - 1);
    expect(service.stdout() + service.stderr()).not.toContain('r3dis-Pw');
    expect(existsSync(join(dataDir, LOCK_FILE_NAME))).toBe(false);
  });

  it.runIf(databaseUrl && redisUrl)(
    'a service started before PostgreSQL and Redis comes up when they do',
    async () => {
      const database = await createTestDatabase();
      const postgres = new URL(database.url);
      const redis = new URL(redisUrl as string);
      const [postgresPort, redisPort] = [await freePort(), await freePort()];
      const late = (url: URL, port: number) => {
        const moved = new URL(url);
        moved.hostname = '127.0.0.1';
        moved.port = String(port);
        return moved.toString();
      };
      const proxies: net.Server[] = [];
      try {
        const service = await startService({
          DATABASE_URL: late(postgres, postgresPort),
          REDIS_URL: late(redis, redisPort),
          STARTUP_TIMEOUT_SECONDS: '60',
          ...quiet,
        });
        // Each comes up only once the service has been told no at least once.
        await waitForLogLine(service, (line) => line.variable === 'DATABASE_URL');
        proxies.push(await forward(postgresPort, postgres));
        await waitForLogLine(service, (line) => line.variable === 'REDIS_URL');
        proxies.push(await forward(redisPort, redis));

        await waitUntilReady(service);
        await signIn(service.base, '+79995550301');
        const reachable = service.logLines().filter((line) => line.msg.endsWith('is reachable'));
        expect(reachable.map((line) => line.variable)).toEqual(['DATABASE_URL', 'REDIS_URL']);
        expect(await stop(service)).toBe(0);
      } finally {
        for (const proxy of proxies) proxy.close();
        await database.drop();
      }
    },
  );
});

/** A TCP proxy on a local port to where `target` points (PostgreSQL or Redis coming up late). */
async function forward(port: number, target: URL): Promise<net.Server> {
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return server;
}

describe('start-up and shutdown of the embedded service', () => {
  it('a busy PORT ends start-up with one line before the database is touched', async () => {
    const busy = net.createServer();
    const port = await freePort();
    await new Promise<void>((resolve) => busy.listen(port, '127.0.0.1', resolve));
    try {
      const dataDir = join(tempDir(), 'data');
      const service = await startService({ DATA_DIR: dataDir }, { port });

      expect(await service.exited).toBe(1);
      expect(service.stderr()).toBe(
        `PORT ${port} is already in use on 127.0.0.1: stop what listens there, or set another PORT\n`,
      );
      expect(existsSync(dataDir), 'DATA_DIR is not even created').toBe(false);
    } finally {
      busy.close();
    }
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} is logged, and so is the end of the shutdown; exit 0`, async () => {
      const service = await startService({ DATA_DIR: tempDir(), ...quiet });
      await waitUntilReady(service);

      expect(await stop(service, signal)).toBe(0);
      const last = service.logLines().slice(-2);
      expect(last.map(({ msg, signal }) => ({ msg, signal }))).toEqual([
        { msg: 'shutting down', signal },
        { msg: 'stopped', signal: undefined },
      ]);
    });
  }

  it('SHUTDOWN_TIMEOUT_SECONDS bounds the wait for in-flight requests', async () => {
    const service = await startService({
      DATA_DIR: tempDir(),
      SMS_CONSOLE_DELAY_MS: '20000',
      SHUTDOWN_TIMEOUT_SECONDS: '1',
    });
    await waitUntilReady(service);
    const inFlight = fetch(`${service.base}/api/auth/request-code/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ phone_number: '+79995550302' }),
    }).catch(() => 'no answer');
    await waitForLogLine(
      service,
      (line) => (line.req as { url?: string } | undefined)?.url === '/api/auth/request-code/',
    );

    expect(await stop(service)).toBe(1);
    expect(service.logLines().at(-1)).toMatchObject({
      level: 50,
      msg: 'not closed within SHUTDOWN_TIMEOUT_SECONDS=1: exiting with what is still in flight',
    });
    await inFlight;
  });
});

describe('npm run migrate', () => {
  const migrations = (
    JSON.parse(readFileSync(join(root, 'drizzle/meta/_journal.json'), 'utf8')) as {
      entries: unknown[];
    }
  ).entries.length;

  it('says that a new DATA_DIR (a copy of the migrated seed) is already up to date', async () => {
    const migrate = runNode('dist/db/migrate-cli.js', { DATA_DIR: tempDir() });
    expect(await migrate.exited).toBe(0);
    expect(migrate.logLines().at(-1)).toMatchObject({
      applied: 0,
      msg: 'the schema is already up to date: no migration to apply',
    });
  });

  it.runIf(databaseUrl)(
    'says how many it applied to a new PostgreSQL database, then none',
    async () => {
      const admin = new pg.Client({ connectionString: databaseUrl });
      await admin.connect();
      const name = `mig_${randomBytes(6).toString('hex')}`;
      await admin.query(`create database "${name}"`);
      try {
        const url = new URL(databaseUrl as string);
        url.pathname = `/${name}`;
        const first = runNode('dist/db/migrate-cli.js', { DATABASE_URL: url.toString() });
        expect(await first.exited).toBe(0);
        expect(first.logLines().at(-1)).toMatchObject({
          database: 'postgres',
          applied: migrations,
          msg: `applied ${migrations} migration${migrations === 1 ? '' : 's'}`,
        });
        const again = runNode('dist/db/migrate-cli.js', { DATABASE_URL: url.toString() });
        expect(await again.exited).toBe(0);
        expect(again.logLines().at(-1)).toMatchObject({
          applied: 0,
          msg: 'the schema is already up to date: no migration to apply',
        });
      } finally {
        await admin.query(`drop database if exists "${name}" with (force)`);
        await admin.end();
      }
    },
  );
});
