import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const root = fileURLToPath(new URL('../..', import.meta.url));

/** A compiled entry point (dist/, as `npm start` and `npm run migrate` run it) in a child process. */
export type NodeProcess = {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  stdout(): string;
  stderr(): string;
  /** The JSON log lines on stdout. */
  logLines(): LogLine[];
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
};

export type LogLine = { level: number; msg: string; [field: string]: unknown };

const running = new Set<ChildProcess>();

export type RunOptions = {
  cwd?: string;
  /** A command to run node under, e.g. unshare. */
  wrap?: string[];
};

export function runNode(
  script: string,
  env: Record<string, string>,
  options: RunOptions = {},
): NodeProcess {
  const cwd = options.cwd ?? root;
  expect(existsSync(join(cwd, script)), `${script} is built (npm run build)`).toBe(true);
  const argv = [...(options.wrap ?? []), process.execPath, script];
  const child = spawn(argv[0] as string, argv.slice(1), {
    cwd,
    env: { PATH: process.env.PATH as string, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d;
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d;
  });
  const exited = once(child, 'close').then(() => {
    running.delete(child);
    return child.exitCode;
  });
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    logLines: () =>
      stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as LogLine),
    exited,
  };
}

/** SIGKILLs whatever a test left running (call in afterEach/afterAll). */
export function killAll(): void {
  for (const child of running) child.kill('SIGKILL');
}

export type Service = NodeProcess & { port: number; base: string };

export function startService(
  env: Record<string, string>,
  options: RunOptions & { port?: number } = {},
): Promise<Service> {
  return (async () => {
    const port = options.port ?? (await freePort());
    const service = runNode('dist/server.js', { PORT: String(port), ...env }, options);
    return { ...service, port, base: `http://127.0.0.1:${port}` };
  })();
}

/** Waits until the service answers /readyz with 200; fails with its output if it exits first. */
export async function waitUntilReady(service: Service, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let ended = false;
  service.exited.then(() => {
    ended = true;
  });
  while (Date.now() < deadline) {
    if (ended) {
      throw new Error(
        `service exited (${service.child.exitCode}):\n${service.stdout()}${service.stderr()}`,
      );
    }
    try {
      if ((await fetch(`${service.base}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`service did not get ready:\n${service.stdout()}${service.stderr()}`);
}

/** Resolves once a log line satisfies `match` (polled: the output arrives in chunks). */
export async function waitForLogLine(
  service: NodeProcess,
  match: (line: LogLine) => boolean,
  timeoutMs = 60_000,
): Promise<LogLine> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const line = service.logLines().find(match);
    if (line) return line;
    if (service.child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no such log line:\n${service.stdout()}${service.stderr()}`);
}

export async function stop(service: NodeProcess, signal: NodeJS.Signals = 'SIGTERM') {
  service.child.kill(signal);
  return service.exited;
}

/** A port nothing listens on right now (the kernel's pick). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Signs a new number in through the HTTP API; answers the token. */
export async function signIn(base: string, phone_number: string): Promise<string> {
  const post = (path: string, body: unknown) =>
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const requested = await post('/api/auth/request-code/', { phone_number });
  expect(requested.status).toBe(200);
  const { dev_code: code } = (await requested.json()) as { dev_code: string };
  const verified = await post('/api/auth/verify-code/', { phone_number, code });
  expect(verified.status).toBe(200);
  return ((await verified.json()) as { token: string }).token;
}

/** The profile's phone number, or the status when there is none. */
export async function profilePhone(base: string, token: string): Promise<string | number> {
  const res = await fetch(`${base}/api/profile/`, { headers: { authorization: `Token ${token}` } });
  if (res.status !== 200) return res.status;
  return ((await res.json()) as { phone_number: string }).phone_number;
}
