import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createTestDatabase, deleteTestKeys, isTestKey, listTestKeys } from '../helper.js';
import { killAll, type Service, startService, waitUntilReady } from './service-process.js';

/**
 * SIGTERM with a burst of slow requests in flight (SPEC 7): each request-code
 * waits on an SMS webhook receiver run here, which holds every delivery until
 * the test lets it go. So the test knows that all of them are inside the
 * service when the signal is sent, and when they may finish.
 */

const BURST = 20;
const onPostgres = Boolean(process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL);
const backends = onPostgres ? (['embedded', 'postgres'] as const) : (['embedded'] as const);
const dirs: string[] = [];

afterEach(killAll);
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** An SMS webhook receiver that answers nothing until `release()`. */
type SlowReceiver = {
  url: string;
  /** How many deliveries it holds. */
  held(): number;
  /** Resolves once it holds `count` deliveries. */
  holding(count: number): Promise<void>;
  /** Answers every held delivery (and any later one) with 200. */
  release(): void;
  close(): Promise<void>;
};

async function slowReceiver(): Promise<SlowReceiver> {
  const waiting: ServerResponse[] = [];
  const watchers: { count: number; resolve: () => void }[] = [];
  let released = false;
  const server: Server = createServer((request: IncomingMessage, response: ServerResponse) => {
    request.resume();
    request.on('end', () => {
      if (released) {
        response.end();
        return;
      }
      waiting.push(response);
      for (const watcher of watchers) if (waiting.length >= watcher.count) watcher.resolve();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/sms`,
    held: () => waiting.length,
    holding: (count) =>
      waiting.length >= count
        ? Promise.resolve()
        : new Promise((resolve) => watchers.push({ count, resolve })),
    release() {
      released = true;
      for (const response of waiting.splice(0)) response.end();
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Resolves once a new TCP connection to the port is refused (the listener is closed). */
async function refusesConnections(port: number): Promise<void> {
  for (;;) {
    const refused = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', (error: NodeJS.ErrnoException) =>
        resolve(error.code === 'ECONNREFUSED'),
      );
    });
    if (refused) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

type Answer = { status: number; body: Record<string, unknown> } | { error: string };

/** One request-code per number, each on a connection of its own (fetch opens as many as needed). */
function burst(service: Service, first: number): Promise<Answer>[] {
  return Array.from({ length: BURST }, (_, i) =>
    fetch(`${service.base}/api/auth/request-code/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ phone_number: `+7999556${String(first + i).padStart(4, '0')}` }),
    }).then(
      async (response): Promise<Answer> => ({
        status: response.status,
        body: (await response.json()) as Record<string, unknown>,
      }),
      (error: Error): Answer => ({ error: error.message }),
    ),
  );
}

/** The service on a back-end, its SMS going to `receiver`, every send limit off (one client sends them all). */
async function withService(
  backend: (typeof backends)[number],
  receiver: SlowReceiver,
  shutdownSeconds: number,
  run: (service: Service) => Promise<void>,
): Promise<void> {
  const env: Record<string, string> = {
    SMS_PROVIDER: 'webhook',
    SMS_WEBHOOK_URL: receiver.url,
    SMS_WEBHOOK_SECRET: 'shutdown-test-secret',
    SMS_TIMEOUT_MS: '60000',
    SHUTDOWN_TIMEOUT_SECONDS: String(shutdownSeconds),
    OTP_MAX_PER_PHONE_PER_HOUR: '0',
    OTP_MAX_PER_IP_PER_HOUR: '0',
    SMS_MAX_PER_HOUR: '0',
  };
  if (backend === 'embedded') {
    const dir = mkdtempSync(join(tmpdir(), 'referral-shutdown-'));
    dirs.push(dir);
    const service = await startService({ ...env, DATA_DIR: join(dir, 'data') });
    await run(service);
    return;
  }
  const database = await createTestDatabase();
  // The service's keys are the new ones outside the tests' `t:` namespace (see start-scripts.test.ts).
  const keysBefore = new Set(await listTestKeys('*'));
  try {
    const service = await startService({
      ...env,
      DATABASE_URL: database.url,
      REDIS_URL: process.env.TEST_REDIS_URL as string,
    });
    await run(service);
  } finally {
    killAll();
    await deleteTestKeys('*', (key) => !isTestKey(key) && !keysBefore.has(key));
    await database.drop();
  }
}

describe.each(backends)(`SIGTERM with ${BURST} slow requests in flight (%s)`, (backend) => {
  it('every one gets its normal answer, new connections are refused, exit 0', async () => {
    const receiver = await slowReceiver();
    try {
      await withService(backend, receiver, 30, async (service) => {
        await waitUntilReady(service);
        const answers = burst(service, 0);
        await receiver.holding(BURST);

        service.child.kill('SIGTERM');
        await refusesConnections(service.port);
        // Refused while all of them are still held, unanswered.
        expect(receiver.held()).toBe(BURST);
        expect(service.child.exitCode).toBeNull();

        receiver.release();
        const settled = await Promise.all(answers);
        for (const answer of settled) {
          expect(answer).toMatchObject({ status: 200, body: { success: true } });
        }
        expect(await service.exited, service.stdout() + service.stderr()).toBe(0);
        const lines = service.logLines();
        expect(
          lines.filter((line) => line.route === '/api/auth/request-code/' && line.status === 200),
        ).toHaveLength(BURST);
        expect(lines.at(-1)?.msg).toBe('stopped');
      });
    } finally {
      await receiver.close();
    }
  }, 120_000);

  it('requests that outlast SHUTDOWN_TIMEOUT_SECONDS: it exits 1 anyway, saying so', async () => {
    const receiver = await slowReceiver();
    try {
      await withService(backend, receiver, 1, async (service) => {
        await waitUntilReady(service);
        const answers = burst(service, 100);
        await receiver.holding(BURST);

        service.child.kill('SIGTERM');
        // The receiver never answers while the service runs: only the timeout can end it.
        expect(await service.exited, service.stdout() + service.stderr()).toBe(1);
        expect(receiver.held()).toBe(BURST);
        expect(service.logLines().at(-1)).toMatchObject({
          level: 50,
          msg: 'not closed within SHUTDOWN_TIMEOUT_SECONDS=1: exiting with what is still in flight',
        });
        // Their connections ended with the process: no answer, and nothing hangs.
        for (const answer of await Promise.all(answers)) expect(answer).toHaveProperty('error');
      });
    } finally {
      await receiver.close();
    }
  }, 120_000);
});
