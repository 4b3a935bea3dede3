import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), 'referral-data-'));
const port = 18_000 + Math.floor(Math.random() * 2000);
const base = `http://127.0.0.1:${port}`;
const children = new Set<ChildProcess>();
const outputs = new Map<ChildProcess, string>();

/** The real entry point, as `npm start` runs it, on embedded storage under a temp DATA_DIR. */
async function startServer(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      DATA_DIR: dataDir,
      SMS_CONSOLE_DELAY_MS: '1500',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let output = '';
  const collect = (d: Buffer) => {
    output += d;
    outputs.set(child, output);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited early:\n${output}`);
    try {
      if ((await fetch(`${base}/healthz`)).ok) return child;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`server did not start:\n${output}`);
}

async function post(path: string, body: unknown, token?: string): Promise<Response> {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Token ${token}` } : {}),
    },
    body: JSON.stringify(body),
  });
}

afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

describe('the server process', () => {
  it('keeps data across restarts, finishes in-flight requests on SIGTERM, and never blocks on the SMS delay', async () => {
    let server = await startServer();
    const phone = '+79995550101';

    // The console provider waits 1.5 s; meanwhile other requests are answered.
    const order: string[] = [];
    const sending = post('/api/auth/request-code/', { phone_number: phone }).then(async (res) => {
      order.push('request-code');
      return res;
    });
    await new Promise((r) => setTimeout(r, 100));
    const health = await fetch(`${base}/healthz`);
    order.push('healthz');
    expect(health.status).toBe(200);
    const requested = await sending;
    expect(order).toEqual(['healthz', 'request-code']);
    expect(requested.status).toBe(200);
    const code = ((await requested.json()) as { dev_code: string }).dev_code;

    const verified = await post('/api/auth/verify-code/', { phone_number: phone, code });
    expect(verified.status).toBe(200);
    const { token, user } = (await verified.json()) as {
      token: string;
      user: { invite_code: string };
    };

    // SIGTERM while a request is in flight: it is answered, then the process exits.
    const inFlight = post('/api/auth/request-code/', { phone_number: '+79995550102' });
    await new Promise((r) => setTimeout(r, 300));
    server.kill('SIGTERM');
    expect((await inFlight).status).toBe(200);
    const [exitCode] = await once(server, 'exit');
    expect(exitCode, outputs.get(server)).toBe(0);

    server = await startServer();
    const profile = await fetch(`${base}/api/profile/`, {
      headers: { authorization: `Token ${token}` },
    });
    expect(profile.status).toBe(200);
    expect(((await profile.json()) as { invite_code: string }).invite_code).toBe(user.invite_code);
    server.kill('SIGTERM');
    await once(server, 'exit');
  }, 240_000);
});
