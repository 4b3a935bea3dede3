/**
 * Benchmarks of the service (GitHub issue 6). `npm run bench` for the full run,
 * `npm run bench -- --quick` for a short smoke run; `--help` lists the options.
 *
 * Every process runs apart, so that none shares an event loop with another:
 * - the service: `node dist/server.js`, once on PostgreSQL + Redis (a throwaway
 *   database and one Redis logical database) and once on the embedded default
 *   (PGlite in a temporary DATA_DIR, in-process store);
 * - a bare `node:http` server answering a fixed 200-byte JSON: the baseline,
 *   loaded on its own just before and just after each workload with a ratio
 *   target, so that a ratio compares figures of the same minutes;
 * - the load generator: autocannon, in a child process forked from this file
 *   (`--load-worker`), one per workload.
 * Traffic goes to 127.0.0.1 only. Everything started is stopped at the end, by
 * pid, and the database and the Redis database used are dropped and flushed.
 *
 * The results are printed as a table and written to bench/results/ as JSON and
 * Markdown (`<date>.json|md` and `latest.json|md`; `-quick` for smoke runs).
 */
import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { OPEN_LIMITS, startScriptNodeArgs, startScriptOf } from './service-settings.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS_DIR = join(ROOT, 'bench', 'results');
const THIS_FILE = fileURLToPath(import.meta.url);
const HOST = '127.0.0.1';

// ---------------------------------------------------------------------------
// Targets of issue 6
// ---------------------------------------------------------------------------

const REFERENCE_VERIFY_RPS = 1_900;
const GOALS = {
  profileRatio: 0.3,
  profileP99Ms: 15,
  verifyRps: 5 * REFERENCE_VERIFY_RPS,
  verifyRatio: 0.25,
  signInsPerSecond: 2_000,
  scaleP99Ms: 20,
  rssMb: 200,
  startupMs: 3_000,
};

// ---------------------------------------------------------------------------
// Load worker: a child process that drives one workload with autocannon
// ---------------------------------------------------------------------------

type RequestSpec = {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
};

type LoadJob = {
  baseUrl: string;
  connections: number;
  durationSeconds: number;
  warmupSeconds: number;
  /**
   * Requests each connection cycles through. `rotate`: every connection gets
   * all of them, starting at a different offset; `slice`: the connections
   * share them out, so no two connections send the same request.
   */
  requests?: RequestSpec[];
  distribution?: 'rotate' | 'slice';
  /** Full sign-in: request-code for a new number, then verify-code with its dev_code. */
  signIn?: { firstNumber: number };
};

type LatencySummary = { mean: number; p50: number; p90: number; p99: number; max: number };

type LoadResult = {
  requests: number;
  durationSeconds: number;
  rps: number;
  latencyMs: LatencySummary;
  statusCodes: Record<string, number>;
  errors: number;
  timeouts: number;
  perSecond: number[];
  signIns?: number;
};

type WorkerMessage =
  | { type: 'ready' }
  | { type: 'measuring' }
  | { type: 'result'; result: LoadResult }
  | { type: 'error'; message: string };

// autocannon ships no types; this is the part of its API used here.
type AcContext = Record<string, unknown>;
type AcRequest = {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  setupRequest?: (request: AcRequest, context: AcContext) => AcRequest | undefined;
  onResponse?: (status: number, body: string, context: AcContext) => void;
};
type AcClient = { setRequests(requests: AcRequest[]): void };
type AcResult = {
  duration: number;
  errors: number;
  timeouts: number;
  statusCodeStats: Record<string, { count: number }>;
};
type AcInstance = PromiseLike<AcResult> & {
  on(
    event: 'response',
    listener: (client: AcClient, status: number, bytes: number, ms: number) => void,
  ): void;
};
type Autocannon = (options: {
  url: string;
  connections: number;
  duration: number;
  timeout: number;
  requests: AcRequest[];
  setupClient?: (client: AcClient) => void;
}) => AcInstance;

export function summariseLatency(samples: number[]): LatencySummary {
  if (samples.length === 0) return { mean: 0, p50: 0, p90: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const mean = sorted.reduce((sum, v) => sum + v, 0) / sorted.length;
  return { mean, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1] ?? 0 };
}

function phoneNumber(n: number): string {
  // +7 999 XXX-XX-XX: valid Russian mobile numbers, one per n below 10^7.
  return `+7999${String(n).padStart(7, '0')}`;
}

async function runLoadWorker(): Promise<void> {
  const send = (message: WorkerMessage) => process.send?.(message);
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
  const job = await new Promise<LoadJob>((resolve) => {
    process.once('message', (message) => resolve(message as LoadJob));
    send({ type: 'ready' });
  });
  if (new URL(job.baseUrl).hostname !== HOST) throw new Error('load goes to 127.0.0.1 only');

  let nextNumber = job.signIn?.firstNumber ?? 0;
  let signIns = 0;
  const json = { 'content-type': 'application/json' };
  const requests: AcRequest[] = job.signIn
    ? [
        {
          method: 'POST',
          path: '/api/auth/request-code/',
          headers: json,
          setupRequest: (request, context) => {
            context.phone = phoneNumber(nextNumber++);
            return { ...request, body: JSON.stringify({ phone_number: context.phone }) };
          },
          onResponse: (status, body, context) => {
            if (status === 200) context.code = (JSON.parse(body) as { dev_code?: string }).dev_code;
          },
        },
        {
          method: 'POST',
          path: '/api/auth/verify-code/',
          headers: json,
          // No code (request-code failed): start the sequence again with a new number.
          setupRequest: (request, context) =>
            typeof context.code === 'string'
              ? {
                  ...request,
                  body: JSON.stringify({ phone_number: context.phone, code: context.code }),
                }
              : undefined,
          onResponse: (status) => {
            if (status === 200) signIns++;
          },
        },
      ]
    : (job.requests ?? []).map((r) => ({ ...r }));
  if (requests.length === 0) throw new Error('a load job needs requests or signIn');

  // Each connection's own list, built once for both the warm-up and the measured run.
  const perClient =
    job.signIn || requests.length < 2
      ? undefined
      : Array.from({ length: job.connections }, (_, i) => {
          if (job.distribution === 'slice') {
            const share = requests.filter((_, j) => j % job.connections === i);
            return share.length > 0 ? share : requests;
          }
          const offset = Math.floor((i * requests.length) / job.connections) % requests.length;
          return [...requests.slice(offset), ...requests.slice(0, offset)];
        });

  const run = async (seconds: number) => {
    let clientIndex = 0;
    const setupClient = (client: AcClient) => {
      const i = clientIndex++;
      if (perClient) client.setRequests(perClient[i % perClient.length] ?? requests);
    };
    const samples: number[] = [];
    // Responses per second of the run: a stall shows as a second with few or none.
    const perSecond: number[] = [];
    const startedMs = performance.now();
    const instance = autocannon({
      url: job.baseUrl,
      connections: job.connections,
      duration: seconds,
      timeout: 10,
      // autocannon builds every request given here for every connection before
      // setupClient runs: with thousands of requests that alone stalls the start.
      requests: perClient ? requests.slice(0, 1) : requests,
      setupClient,
    });
    instance.on('response', (_client, _status, _bytes, ms) => {
      samples.push(ms);
      const second = Math.floor((performance.now() - startedMs) / 1000);
      perSecond[second] = (perSecond[second] ?? 0) + 1;
    });
    const result = await instance;
    return { result, samples, perSecond: Array.from(perSecond, (n) => n ?? 0) };
  };

  if (job.warmupSeconds > 0) await run(job.warmupSeconds);
  signIns = 0;
  send({ type: 'measuring' });
  const { result, samples, perSecond } = await run(job.durationSeconds);
  const statusCodes: Record<string, number> = {};
  let total = 0;
  for (const [code, { count }] of Object.entries(result.statusCodeStats)) {
    statusCodes[code] = Number(count);
    total += Number(count);
  }
  const message: WorkerMessage = {
    type: 'result',
    result: {
      requests: total,
      durationSeconds: result.duration,
      rps: total / result.duration,
      latencyMs: summariseLatency(samples),
      statusCodes,
      errors: result.errors,
      timeouts: result.timeouts,
      perSecond,
      ...(job.signIn ? { signIns } : {}),
    },
  };
  process.send?.(message, () => process.exit(0));
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/**
 * `postgres`: PostgreSQL + Redis; `embedded`: the default (PGlite under DATA_DIR,
 * in-process store); `memory`: PGlite in memory (DATABASE_URL=memory://), only
 * when asked for, to tell PGlite's own cost from its file system's.
 */
type Backend = 'postgres' | 'embedded' | 'memory';
const WORKLOADS = ['healthz', 'profile', 'verify', 'signin', 'scale', 'startup'] as const;
type WorkloadName = (typeof WORKLOADS)[number];

type Options = {
  quick: boolean;
  connections: number;
  durationSeconds: number;
  warmupSeconds: number;
  backends: Backend[];
  workloads: WorkloadName[];
  scaleUsers: number;
  scaleReferrals: number;
  startupRepeats: number;
  build: boolean;
  cpuProfile: boolean;
  write: boolean;
  quietWaitSeconds: number;
  pgAdminUrl: string;
  redisUrl: string;
};

const HELP = `usage: npm run bench -- [options]

  --quick               short smoke run: 3 s per workload, 50k users for the scale workloads
  --duration S          seconds measured per workload (default 10, quick 3)
  --warmup S            seconds of unmeasured load before each (default 2, quick 1)
  --connections N       concurrent keep-alive connections (default 64)
  --backends LIST       postgres,embedded,memory (default postgres,embedded)
  --only LIST           healthz,profile,verify,signin,scale,startup (default all; the
                        bare baseline always runs)
  --users N             users seeded for the scale workloads (default 1000000, quick 50000)
  --referrals N         referrals of the top referrer (default 100000, quick 5000)
  --cpu-prof            run the service under --cpu-prof and summarise where the time goes
                        (best with --only and one backend)
  --quiet-wait S        before each workload, wait up to S seconds for the machine to be
                        idle (default 120, quick 10; 0: do not wait)
  --no-build            do not run \`npm run build\` first
  --no-write            print only; write nothing to bench/results/

Environment: BENCH_PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres) is used
to create and drop a throwaway database; BENCH_REDIS_URL (default
redis://127.0.0.1:6379/13) names the Redis logical database, flushed before and after.`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      backends: { type: 'string' },
      only: { type: 'string' },
      users: { type: 'string' },
      referrals: { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      'no-build': { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      'quiet-wait': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    process.exit(0);
  }
  const quick = values.quick;
  const num = (text: string | undefined, fallback: number, name: string) => {
    if (text === undefined) return fallback;
    const value = Number(text.replaceAll('_', ''));
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a number > 0`);
    return value;
  };
  const list = <T extends string>(text: string | undefined, all: readonly T[], name: string) => {
    if (text === undefined) return [...all];
    const items = text.split(',').map((s) => s.trim()) as T[];
    for (const item of items) {
      if (!all.includes(item)) throw new Error(`--${name}: unknown "${item}"`);
    }
    return items;
  };
  return {
    quick,
    connections: num(values.connections, 64, 'connections'),
    durationSeconds: num(values.duration, quick ? 3 : 10, 'duration'),
    warmupSeconds: values.warmup === '0' ? 0 : num(values.warmup, quick ? 1 : 2, 'warmup'),
    backends:
      values.backends === undefined
        ? ['postgres', 'embedded']
        : list(values.backends, ['postgres', 'embedded', 'memory'] as const, 'backends'),
    workloads: list(values.only, WORKLOADS, 'only'),
    scaleUsers: num(values.users, quick ? 50_000 : 1_000_000, 'users'),
    scaleReferrals: num(values.referrals, quick ? 5_000 : 100_000, 'referrals'),
    startupRepeats: quick ? 1 : 3,
    build: !values['no-build'],
    cpuProfile: values['cpu-prof'],
    write: !values['no-write'],
    quietWaitSeconds:
      values['quiet-wait'] === '0' ? 0 : num(values['quiet-wait'], quick ? 10 : 120, 'quiet-wait'),
    pgAdminUrl: process.env.BENCH_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/13',
  };
}

// ---------------------------------------------------------------------------
// Processes: everything started is tracked, and stopped by pid at the end
// ---------------------------------------------------------------------------

const children = new Set<ChildProcess>();
const cleanups: (() => Promise<void>)[] = [];

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function stopProcess(child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited(child);
  clearTimeout(timer);
}

async function cleanUp(): Promise<void> {
  await Promise.allSettled([...children].map((child) => stopProcess(child, 5_000)));
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function waitForHealthy(baseUrl: string, child: ChildProcess, timeoutMs: number) {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`process exited with code ${child.exitCode}`);
    try {
      const response = await fetch(`${baseUrl}/healthz`);
      await response.arrayBuffer();
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(10);
  }
  throw new Error(`no 200 from ${baseUrl}/healthz within ${timeoutMs} ms`);
}

// ---------------------------------------------------------------------------
// /proc sampling: the service's memory, and who used the CPU
// ---------------------------------------------------------------------------

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

function rssMb(pid: number): number | null {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

function peakRssMb(pid: number): number | null {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

type CpuSnapshot = {
  atMs: number;
  machine: { busy: number; steal: number; total: number };
  procs: ProcTimes;
};
type ProcTimes = Map<number, { comm: string; ticks: number }>;

function readProcTimes(): ProcTimes {
  const times: ProcTimes = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' ');
      // Fields 14 and 15 of /proc/<pid>/stat (utime, stime), counted from the state field (3).
      times.set(Number(entry), { comm, ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // the process ended meanwhile
    }
  }
  return times;
}

function readMachineTimes(): { busy: number; steal: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  // user nice system idle iowait irq softirq steal guest guest_nice; guests are inside user.
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = ticks.reduce((sum, v) => sum + v, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  const steal = ticks[7] ?? 0;
  return { busy: total - idle - steal, steal, total };
}

function cpuSnapshot(): CpuSnapshot {
  return { atMs: performance.now(), machine: readMachineTimes(), procs: readProcTimes() };
}

/** CPU used between two snapshots, in % of one core, by role; machine busy in % of all cores. */
type CpuUse = {
  service: number;
  loadGenerator: number;
  postgres: number;
  redis: number;
  other: number;
  machineBusy: number;
  /** % of all cores the hypervisor gave to other guests: invisible load from outside this VM. */
  steal: number;
};

function cpuUse(before: CpuSnapshot, after: CpuSnapshot, servicePid: number, loadPid: number) {
  const seconds = (after.atMs - before.atMs) / 1000;
  const use = emptyCpu();
  for (const [pid, now] of after.procs) {
    const ticks = now.ticks - (before.procs.get(pid)?.ticks ?? now.ticks);
    const pct = (ticks / CLOCK_TICKS / seconds) * 100;
    if (pid === servicePid) use.service += pct;
    else if (pid === loadPid) use.loadGenerator += pct;
    else if (now.comm === 'postgres') use.postgres += pct;
    else if (now.comm.startsWith('redis')) use.redis += pct;
    else use.other += pct;
  }
  const total = after.machine.total - before.machine.total;
  use.machineBusy = total > 0 ? ((after.machine.busy - before.machine.busy) / total) * 100 : 0;
  use.steal = total > 0 ? ((after.machine.steal - before.machine.steal) / total) * 100 : 0;
  return use;
}

// ---------------------------------------------------------------------------
// The processes under test
// ---------------------------------------------------------------------------

type Service = {
  backend: Backend | 'bare';
  child: ChildProcess;
  pid: number;
  baseUrl: string;
  logFile: string;
  startMs: number;
};

const BARE_BODY = JSON.stringify({
  id: 1,
  phone_number: '+79991234567',
  invite_code: 'A1B2C3',
  activated_invite_code: null,
  referrals: [{ phone_number: '+79997654321', activated_at: '2026-01-15T12:00:00.000Z' }],
  referrals_count: 1,
  padding: 'x'.repeat(20),
});

// The baseline: what Node.js itself can serve on this machine, no framework at all.
const BARE_SERVER = `
const http = require('node:http');
const body = Buffer.from(process.env.BARE_BODY);
http.createServer((request, response) => {
  request.resume();
  response.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length });
  response.end(body);
}).listen(Number(process.env.PORT), '${HOST}');`;

function minimalEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  // A clean environment (and a working directory without a .env file): nothing
  // from the caller's shell changes what is measured.
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: os.tmpdir(), ...extra };
}

async function startBare(): Promise<Service> {
  const port = await freePort();
  const baseUrl = `http://${HOST}:${port}`;
  const started = performance.now();
  const child = track(
    spawn(process.execPath, ['-e', BARE_SERVER], {
      env: minimalEnv({ PORT: String(port), BARE_BODY }),
      stdio: 'ignore',
    }),
  );
  const deadline = performance.now() + 10_000;
  for (;;) {
    try {
      const response = await fetch(baseUrl);
      await response.arrayBuffer();
      break;
    } catch {
      if (performance.now() > deadline || child.exitCode !== null) throw new Error('bare server');
      await sleep(10);
    }
  }
  return {
    backend: 'bare',
    child,
    pid: child.pid ?? 0,
    baseUrl,
    logFile: '',
    startMs: performance.now() - started,
  };
}

type ServiceSettings = {
  backend: Backend;
  env: Record<string, string>;
  workDir: string;
  cpuProfileDir?: string;
};

/**
 * The service runs as the README's start script for its back-end runs it
 * (`npm start`, or `npm run start:postgres`), with the same node flags, then
 * BENCH_NODE_ARGS (extra flags, to compare settings such as V8 heap sizes).
 */
function serviceNodeArgs(backend: Backend): string[] {
  return [
    ...startScriptNodeArgs(startScriptOf(backend)),
    ...(process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
  ];
}

async function startService(settings: ServiceSettings): Promise<Service> {
  const port = await freePort();
  const baseUrl = `http://${HOST}:${port}`;
  const logFile = join(settings.workDir, `service-${settings.backend}-${port}.log`);
  const log = openSync(logFile, 'a');
  const nodeArgs = [
    ...serviceNodeArgs(settings.backend),
    ...(settings.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${settings.cpuProfileDir}`] : []),
  ];
  const started = performance.now();
  const child = track(
    spawn(process.execPath, [...nodeArgs, join(ROOT, 'dist', 'server.js')], {
      cwd: settings.workDir,
      env: minimalEnv({
        NODE_ENV: 'development',
        HOST,
        PORT: String(port),
        LOG_LEVEL: 'warn',
        SMS_CONSOLE_DELAY_MS: '0',
        ...OPEN_LIMITS,
        ...settings.env,
      }),
      stdio: ['ignore', log, log],
    }),
  );
  closeSync(log);
  try {
    await waitForHealthy(baseUrl, child, 120_000);
  } catch (error) {
    await stopProcess(child);
    throw new Error(
      `${settings.backend} service did not start: ${(error as Error).message}\n${tail(logFile)}`,
    );
  }
  return {
    backend: settings.backend,
    child,
    pid: child.pid ?? 0,
    baseUrl,
    logFile,
    startMs: performance.now() - started,
  };
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------
// Talking to the service during set-up
// ---------------------------------------------------------------------------

type Json = Record<string, unknown>;

async function call(
  baseUrl: string,
  method: 'GET' | 'POST',
  path: string,
  options: { body?: Json; token?: string } = {},
): Promise<{ status: number; json: Json }> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      ...(options.body ? { 'content-type': 'application/json' } : {}),
      ...(options.token ? { authorization: `Token ${options.token}` } : {}),
    },
    ...(options.body ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, json: text ? (JSON.parse(text) as Json) : {} };
}

async function expectOk(
  promise: Promise<{ status: number; json: Json }>,
  what: string,
): Promise<Json> {
  const { status, json } = await promise;
  if (status !== 200) throw new Error(`${what}: HTTP ${status} ${JSON.stringify(json)}`);
  return json;
}

async function requestCode(baseUrl: string, phone: string): Promise<string> {
  const json = await expectOk(
    call(baseUrl, 'POST', '/api/auth/request-code/', { body: { phone_number: phone } }),
    `request-code ${phone}`,
  );
  if (typeof json.dev_code !== 'string') throw new Error('request-code gave no dev_code');
  return json.dev_code;
}

async function signIn(baseUrl: string, phone: string): Promise<{ token: string; user: Json }> {
  const code = await requestCode(baseUrl, phone);
  const json = await expectOk(
    call(baseUrl, 'POST', '/api/auth/verify-code/', { body: { phone_number: phone, code } }),
    `verify-code ${phone}`,
  );
  return { token: json.token as string, user: json.user as Json };
}

/** Runs `work` over `items`, `concurrency` at a time, keeping the order of the results. */
async function inPool<T, R>(items: T[], concurrency: number, work: (item: T) => Promise<R>) {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return results;
}

// ---------------------------------------------------------------------------
// Running one workload
// ---------------------------------------------------------------------------

type WorkloadRun = {
  workload: string;
  backend: Backend | 'bare';
  description: string;
  expectedStatus: number;
  connections: number;
  requests: number;
  durationSeconds: number;
  rps: number;
  signInsPerSecond?: number;
  /**
   * Workloads with a ratio target: the higher of the two bare runs measured
   * just before and just after this one (req/s), and the ratio to it.
   */
  bareNextTo?: number;
  ratioToBare?: number;
  /** The ratio to the highest bare run of the whole run, for comparison. */
  ratioToBestBare?: number;
  latencyMs: LatencySummary;
  statusCodes: Record<string, number>;
  okShare: number;
  errors: number;
  timeouts: number;
  /** Responses in each second of the measured run. */
  perSecond: number[];
  cpu: CpuUse;
  /** Other processes used more than a quarter of a core: the figures are lower than they could be. */
  contended: boolean;
  serviceRssMb: { max: number; mean: number } | null;
};

type Context = { options: Options; runs: WorkloadRun[]; windows: Window[]; baseline?: Baseline };

/**
 * The bare node:http server, kept running through the whole run and loaded on
 * its own next to each workload with a ratio target. The host's speed drifts by
 * up to a third within minutes (other guests), so a ratio divides by the bare
 * runs of the same minutes, and of those by the higher one.
 */
type Baseline = {
  service: Service;
  runs: WorkloadRun[];
  /** The latest bare run: it stands for the next workload's "before" while recent. */
  latest: { run: WorkloadRun; endedMs: number } | null;
};

/** A bare run this recent counts as measured right before the next workload. */
const BARE_REUSE_MS = 20_000;

async function measureBare(context: Context): Promise<WorkloadRun> {
  const baseline = context.baseline as Baseline;
  const sink: Context = { options: context.options, runs: baseline.runs, windows: [] };
  const run = await runLoad(sink, baseline.service, {
    workload: 'bare node:http',
    description: `fixed ${Buffer.byteLength(BARE_BODY)}-byte JSON from a plain node:http server`,
    expectedStatus: 200,
    job: { requests: [{ method: 'GET', path: '/' }] },
  });
  baseline.latest = { run, endedMs: performance.now() };
  return run;
}

async function bareBefore(context: Context): Promise<WorkloadRun> {
  const latest = context.baseline?.latest;
  if (latest && performance.now() - latest.endedMs < BARE_REUSE_MS) return latest.run;
  return measureBare(context);
}

async function runLoad(
  context: Context,
  service: Service,
  spec: {
    workload: string;
    description: string;
    expectedStatus: number;
    job: Omit<LoadJob, 'baseUrl' | 'connections' | 'durationSeconds' | 'warmupSeconds'>;
    /** Instead of --connections. */
    connections?: number;
    /** Measure the bare server right before and after, for the ratio (see Baseline). */
    paired?: boolean;
  },
): Promise<WorkloadRun> {
  const { options } = context;
  const paired = spec.paired === true && context.baseline !== undefined;
  const bare = paired ? await bareBefore(context) : null;
  const label = `${spec.workload} (${service.backend})`;
  await waitForQuiet(options.quietWaitSeconds);
  process.stdout.write(`  ${label.padEnd(34)} `);
  const worker = track(
    fork(THIS_FILE, ['--load-worker'], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  const job: LoadJob = {
    baseUrl: service.baseUrl,
    connections: spec.connections ?? options.connections,
    durationSeconds: options.durationSeconds,
    warmupSeconds: options.warmupSeconds,
    ...spec.job,
  };
  const rss: number[] = [];
  let sampler: NodeJS.Timeout | undefined;
  let before: CpuSnapshot | undefined;
  let startUs = 0;
  const result = await new Promise<LoadResult>((resolve, reject) => {
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'ready') worker.send(job);
      else if (message.type === 'measuring') {
        startUs = monotonicUs();
        before = cpuSnapshot();
        sampler = setInterval(() => {
          const mb = rssMb(service.pid);
          if (mb !== null) rss.push(mb);
        }, 200);
      } else if (message.type === 'result') resolve(message.result);
      else reject(new Error(message.message));
    });
    worker.once('exit', (code) => reject(new Error(`load worker exited with code ${code}`)));
  });
  clearInterval(sampler);
  const after = cpuSnapshot();
  context.windows.push({
    label: spec.workload,
    backend: service.backend,
    startUs,
    endUs: monotonicUs(),
  });
  await exited(worker);
  const ok = result.statusCodes[String(spec.expectedStatus)] ?? 0;
  const cpu = before ? cpuUse(before, after, service.pid, worker.pid ?? 0) : emptyCpu();
  const run: WorkloadRun = {
    workload: spec.workload,
    backend: service.backend,
    description: spec.description,
    expectedStatus: spec.expectedStatus,
    connections: job.connections,
    requests: result.requests,
    durationSeconds: result.durationSeconds,
    rps: result.rps,
    ...(result.signIns !== undefined
      ? { signInsPerSecond: result.signIns / result.durationSeconds }
      : {}),
    latencyMs: result.latencyMs,
    statusCodes: result.statusCodes,
    okShare: result.requests > 0 ? ok / result.requests : 0,
    errors: result.errors,
    timeouts: result.timeouts,
    perSecond: result.perSecond,
    cpu,
    contended: cpu.other + cpu.steal * os.cpus().length > CONTENDED_OTHER_CPU,
    serviceRssMb:
      rss.length > 0
        ? { max: Math.max(...rss), mean: rss.reduce((sum, v) => sum + v, 0) / rss.length }
        : null,
  };
  context.runs.push(run);
  const rate =
    run.signInsPerSecond !== undefined
      ? `${fmt(run.signInsPerSecond)} sign-ins/s (${fmt(run.rps)} req/s)`
      : `${fmt(run.rps)} req/s`;
  process.stdout.write(
    `${rate}, p50 ${run.latencyMs.p50.toFixed(1)} ms, p99 ${run.latencyMs.p99.toFixed(1)} ms` +
      `${run.okShare < 0.99 ? `, only ${(run.okShare * 100).toFixed(1)}% answered ${run.expectedStatus}: ${JSON.stringify(run.statusCodes)}` : ''}` +
      `${run.contended ? ` [contended: others used ${(run.cpu.other + run.cpu.steal * os.cpus().length).toFixed(0)}% of a core]` : ''}` +
      `${stallNote(run.perSecond)}\n`,
  );
  if (bare) {
    const after = await measureBare(context);
    run.bareNextTo = Math.max(bare.rps, after.rps);
    run.ratioToBare = run.rps / run.bareNextTo;
  }
  return run;
}

/**
 * Waits, up to `maxSeconds`, until the machine is nearly idle before a workload
 * starts (nothing of ours runs between workloads): on a shared machine this
 * keeps other people's jobs out of the figures as far as possible.
 */
async function waitForQuiet(maxSeconds: number): Promise<void> {
  const deadline = performance.now() + maxSeconds * 1000;
  let announced = false;
  for (;;) {
    const before = readMachineTimes();
    await sleep(1000);
    const after = readMachineTimes();
    const total = after.total - before.total;
    const busyCores = total > 0 ? ((after.busy - before.busy) / total) * os.cpus().length : 0;
    if (busyCores * 100 < QUIET_CPU) return;
    if (performance.now() > deadline) {
      if (announced) process.stdout.write('still busy, going on; ');
      return;
    }
    if (!announced) {
      announced = true;
      process.stdout.write(
        `(machine busy: ${(busyCores * 100).toFixed(0)}% of a core used by others; waiting) `,
      );
    }
  }
}

/** Names the slowest second when it served under a quarter of the median one. */
function stallNote(perSecond: number[]): string {
  const full = perSecond.slice(0, -1); // the last second is cut short by the end of the run
  if (full.length < 3) return '';
  const sorted = [...full].sort((a, b) => a - b);
  const median = sorted[sorted.length >> 1] ?? 0;
  const slowest = sorted[0] ?? 0;
  return slowest < median / 4
    ? ` [stall: second ${full.indexOf(slowest) + 1} served ${fmt(slowest)}, median ${fmt(median)}]`
    : '';
}

// % of one core in use by others below which the machine counts as quiet.
const QUIET_CPU = 20;
// % of one core used by processes outside the benchmark above which a run is marked contended.
const CONTENDED_OTHER_CPU = 25;

function emptyCpu(): CpuUse {
  return {
    service: 0,
    loadGenerator: 0,
    postgres: 0,
    redis: 0,
    other: 0,
    machineBusy: 0,
    steal: 0,
  };
}

function fmt(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

// ---------------------------------------------------------------------------
// The workloads
// ---------------------------------------------------------------------------

const PROFILE_TOKENS = 100;
const LIGHT_CONNECTIONS = 8;
const PROFILE_REFERRALS = 20;

function authorized(token: string, path: string): RequestSpec {
  return { method: 'GET', path, headers: { authorization: `Token ${token}` } };
}

/** GET /healthz: the framework alone, no storage, to tell its cost from the handlers'. */
async function healthzWorkload(context: Context, service: Service): Promise<void> {
  await runLoad(context, service, {
    workload: 'healthz',
    description: 'GET /healthz: routing, hooks and serialisation without any storage',
    expectedStatus: 200,
    paired: true,
    job: { requests: [{ method: 'GET', path: '/healthz' }] },
  });
}

/** GET /api/profile/ of a user with 20 referrals, over 100 tokens of theirs. */
async function profileWorkload(context: Context, service: Service): Promise<void> {
  const base = service.baseUrl;
  const owner = phoneNumber(1);
  const tokens = (
    await inPool(Array.from({ length: PROFILE_TOKENS }), 1, () => signIn(base, owner))
  ).map((s) => s.token);
  const first = await expectOk(call(base, 'GET', '/api/profile/', { token: tokens[0] }), 'profile');
  await inPool(
    Array.from({ length: PROFILE_REFERRALS }, (_, i) => i),
    8,
    async (i) => {
      const { token } = await signIn(base, phoneNumber(100 + i));
      await expectOk(
        call(base, 'POST', '/api/profile/', { token, body: { invite_code: first.invite_code } }),
        'activate',
      );
    },
  );
  const profile = await expectOk(
    call(base, 'GET', '/api/profile/', { token: tokens[0] }),
    'profile',
  );
  if (profile.referrals_count !== PROFILE_REFERRALS) {
    throw new Error(`profile set-up: ${profile.referrals_count} referrals`);
  }
  await runLoad(context, service, {
    workload: 'profile',
    description: `GET /api/profile/, ${PROFILE_REFERRALS} referrals, ${PROFILE_TOKENS} rotating tokens`,
    expectedStatus: 200,
    paired: true,
    job: { requests: tokens.map((t) => authorized(t, '/api/profile/')), distribution: 'rotate' },
  });
}

/**
 * The profile workload's reads with the per-instance caches off (a second
 * embedded instance on the same DATA_DIR, `CACHE_SIZE=0`): what a first read
 * costs in PGlite. The owner and referrals are those the profile workload made.
 */
async function uncachedProfileWorkload(context: Context, service: Service): Promise<void> {
  const base = service.baseUrl;
  const tokens = (
    await inPool(Array.from({ length: PROFILE_TOKENS }), 1, () => signIn(base, phoneNumber(1)))
  ).map((s) => s.token);
  const profile = await expectOk(
    call(base, 'GET', '/api/profile/', { token: tokens[0] }),
    'profile',
  );
  if (profile.referrals_count !== PROFILE_REFERRALS) {
    throw new Error(`uncached profile set-up: ${profile.referrals_count} referrals`);
  }
  await runLoad(context, service, {
    workload: 'profile-nocache',
    description: `GET /api/profile/ with CACHE_SIZE=0, ${PROFILE_REFERRALS} referrals, ${PROFILE_TOKENS} rotating tokens`,
    expectedStatus: 200,
    job: { requests: tokens.map((t) => authorized(t, '/api/profile/')), distribution: 'rotate' },
  });
}

/** verify-code with a wrong code, spread over many numbers that each have a live code. */
async function verifyWorkload(context: Context, service: Service): Promise<void> {
  const { options } = context;
  const maxAttempts = Number(OPEN_LIMITS.OTP_MAX_ATTEMPTS);
  // Enough numbers that even 25,000 wrong guesses a second never use up a code's attempts.
  const seconds = options.durationSeconds + options.warmupSeconds;
  const count = Math.max(options.connections, Math.ceil((25_000 * seconds) / maxAttempts));
  const numbers = Array.from({ length: count }, (_, i) => phoneNumber(1_000_000 + i));
  const codes = await inPool(numbers, 32, (phone) => requestCode(service.baseUrl, phone));
  const requests = numbers.map((phone, i): RequestSpec => {
    const code = codes[i] ?? '0000';
    const wrong = String((Number(code) + 1) % 10 ** code.length).padStart(code.length, '0');
    return {
      method: 'POST',
      path: '/api/auth/verify-code/',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ phone_number: phone, code: wrong }),
    };
  });
  // The same bytes as the load will send must be answered as a wrong code, not as bad input.
  const probe = requests[0];
  if (probe?.body) {
    const answer = await call(service.baseUrl, 'POST', probe.path, {
      body: JSON.parse(probe.body) as Json,
    });
    if (answer.status !== 400 || answer.json.code !== 'invalid_code') {
      throw new Error(
        `verify-code with a wrong code: HTTP ${answer.status} ${JSON.stringify(answer.json)}`,
      );
    }
  }
  await runLoad(context, service, {
    workload: 'verify-wrong',
    description: `verify-code with a wrong code over ${count} numbers with live codes`,
    expectedStatus: 400,
    paired: true,
    job: { requests, distribution: 'slice' },
  });
}

/** request-code then verify-code with the dev_code, for a new number each time. */
async function signInWorkload(context: Context, service: Service): Promise<void> {
  await runLoad(context, service, {
    workload: 'sign-in',
    description: 'request-code + verify-code for a new number (new user) each time',
    expectedStatus: 200,
    job: { signIn: { firstNumber: 3_000_000 } },
  });
}

type SeedSummary = {
  users: number;
  topUser: { id: number; inviteCode: string; referralsCount: number; tokens: string[] };
  sampleUsers: { id: number; token: string }[];
  totals: { users: number; referred: number; apiTokens: number };
  foreignKeyChecks: string;
  timingsMs: Record<string, number>;
};

type SeedReport = {
  users: number;
  topReferrals: number;
  wallMs: number;
  totals: SeedSummary['totals'];
  foreignKeyChecks: string;
  timingsMs: Record<string, number>;
};

async function seedScaleData(
  options: Options,
  databaseUrl: string,
  workDir: string,
): Promise<{ summary: SeedSummary; report: SeedReport }> {
  const out = join(workDir, 'seed.json');
  const started = performance.now();
  process.stdout.write(
    `  seeding ${fmt(options.scaleUsers)} users, top referrer with ${fmt(options.scaleReferrals)} referrals…\n`,
  );
  const child = track(
    spawn(
      join(ROOT, 'node_modules', '.bin', 'tsx'),
      [
        join(ROOT, 'scripts', 'seed-data.ts'),
        '--users',
        String(options.scaleUsers),
        '--top-referrals',
        String(options.scaleReferrals),
        '--tokens',
        '100',
        '--sample-users',
        '1000',
        '--out',
        out,
        '--database-url',
        databaseUrl,
      ],
      { cwd: workDir, env: minimalEnv({}), stdio: ['ignore', 'inherit', 'pipe'] },
    ),
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await exited(child);
  if (child.exitCode !== 0) throw new Error(`seed failed:\n${stderr}`);
  const wallMs = performance.now() - started;
  const summary = JSON.parse(readFileSync(out, 'utf8')) as SeedSummary;
  process.stdout.write(
    `  seeded in ${(wallMs / 1000).toFixed(1)} s (${Object.entries(summary.timingsMs)
      .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`)
      .join(', ')})\n`,
  );
  return {
    summary,
    report: {
      users: options.scaleUsers,
      topReferrals: options.scaleReferrals,
      wallMs,
      totals: summary.totals,
      foreignKeyChecks: summary.foreignKeyChecks,
      timingsMs: summary.timingsMs,
    },
  };
}

/**
 * Profile and referral pages of the top referrer, and profiles of random users,
 * at scale. `variant` names a second run of the same workloads (`-nocache`).
 */
async function scaleWorkloads(context: Context, service: Service, seed: SeedSummary, variant = '') {
  const base = service.baseUrl;
  const tokens = seed.topUser.tokens;
  const top = tokens[0] ?? '';
  const profile = await expectOk(call(base, 'GET', '/api/profile/', { token: top }), 'profile');
  if (profile.referrals_count !== seed.topUser.referralsCount) {
    throw new Error(`scale set-up: top referrer has ${profile.referrals_count} referrals`);
  }
  // Cursors are opaque: collect them by walking the pages, then spread 100 over the list.
  const cursors: string[] = [''];
  for (let cursor: string | null = ''; cursor !== null; ) {
    const query = `?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = await expectOk(
      call(base, 'GET', `/api/profile/referrals/${query}`, { token: top }),
      'referrals page',
    );
    cursor = (page.next_cursor as string | null) ?? null;
    if (cursor !== null) cursors.push(cursor);
  }
  const spread = Array.from(
    { length: Math.min(100, cursors.length) },
    (_, i) => cursors[Math.floor((i * cursors.length) / Math.min(100, cursors.length))] ?? '',
  );
  const referralsCount = fmt(seed.topUser.referralsCount);
  const users = fmt(seed.users);
  const profileJob: LoadJob['requests'] = tokens.map((t) => authorized(t, '/api/profile/'));
  const pagesJob: LoadJob['requests'] = spread.map((cursor, i) =>
    authorized(
      tokens[i % tokens.length] ?? top,
      `/api/profile/referrals/?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    ),
  );
  // At full load the latency is mostly queueing; at 8 connections it is the request's own.
  for (const connections of [context.options.connections, LIGHT_CONNECTIONS]) {
    const suffix = `${variant}${connections === context.options.connections ? '' : `@${connections}`}`;
    await runLoad(context, service, {
      workload: `scale-profile${suffix}`,
      description: `${users} users: GET /api/profile/ of the top referrer (${referralsCount} referrals), ${tokens.length} tokens`,
      expectedStatus: 200,
      connections,
      job: { requests: profileJob, distribution: 'rotate' },
    });
    await runLoad(context, service, {
      workload: `scale-referrals${suffix}`,
      description: `${users} users: GET /api/profile/referrals/?limit=100 of the top referrer, ${spread.length} cursors across all pages`,
      expectedStatus: 200,
      connections,
      job: { requests: pagesJob, distribution: 'rotate' },
    });
  }
  await runLoad(context, service, {
    workload: `scale-profile-random${variant}`,
    description: `${users} users: GET /api/profile/ of ${seed.sampleUsers.length} random users`,
    expectedStatus: 200,
    job: {
      requests: seed.sampleUsers.map((u) => authorized(u.token, '/api/profile/')),
      distribution: 'rotate',
    },
  });
}

// ---------------------------------------------------------------------------
// Back-ends
// ---------------------------------------------------------------------------

type ServiceReport = {
  backend: Backend;
  startMs: number;
  idleRssMb: number | null;
  peakRssMb: number | null;
  cpuProfile?: ProfileSummary;
};

type Outcome = {
  services: ServiceReport[];
  seed?: SeedReport;
  skipped: string[];
};

async function runPostgres(context: Context, workDir: string, outcome: Outcome): Promise<void> {
  const { options } = context;
  const admin = new pg.Client({ connectionString: options.pgAdminUrl });
  const redis = new Redis(options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await admin.connect();
    await redis.connect();
  } catch (error) {
    outcome.skipped.push(`postgres: PostgreSQL or Redis unreachable (${(error as Error).message})`);
    await admin.end().catch(() => {});
    redis.disconnect();
    return;
  }
  const dbName = `bench_${randomBytes(6).toString('hex')}`;
  await admin.query(`create database ${dbName}`);
  await redis.flushdb();
  let dropped = false;
  const dropAll = async () => {
    if (dropped) return;
    dropped = true;
    await redis.flushdb().catch(() => {});
    redis.disconnect();
    await admin.query(`drop database if exists ${dbName} with (force)`).catch(() => {});
    await admin.end();
  };
  cleanups.push(dropAll);
  const databaseUrl = new URL(options.pgAdminUrl);
  databaseUrl.pathname = `/${dbName}`;

  try {
    await runBackend(context, workDir, outcome, {
      backend: 'postgres',
      env: { DATABASE_URL: databaseUrl.toString(), REDIS_URL: options.redisUrl },
      afterCommon: async (service) => {
        if (!options.workloads.includes('scale')) return;
        const seed = await seedScaleData(options, databaseUrl.toString(), workDir);
        outcome.seed = seed.report;
        await scaleWorkloads(context, service, seed.summary);
        // The same reads with the per-instance caches off: what every read
        // costs in PostgreSQL (a first read, or CACHE_SIZE=0).
        const uncached = await startService({
          backend: 'postgres',
          workDir,
          env: {
            DATABASE_URL: databaseUrl.toString(),
            REDIS_URL: options.redisUrl,
            CACHE_SIZE: '0',
          },
        });
        try {
          await scaleWorkloads(context, uncached, seed.summary, '-nocache');
        } finally {
          await stopProcess(uncached.child);
        }
      },
    });
  } finally {
    await dropAll();
  }
}

async function runEmbedded(context: Context, workDir: string, outcome: Outcome): Promise<void> {
  // `npm start` creates the database once and finds it afterwards: the load runs
  // on a DATA_DIR made by an earlier start, as it does on every start but the first.
  const dataDir = mkdtempSync(join(workDir, 'pglite-'));
  const first = await startService({ backend: 'embedded', workDir, env: { DATA_DIR: dataDir } });
  await stopProcess(first.child);
  await runBackend(context, workDir, outcome, { backend: 'embedded', env: { DATA_DIR: dataDir } });
  // PGlite allows one process per DATA_DIR, so the uncached instance starts
  // after the first has stopped, on the data the profile workload made.
  if (!context.options.workloads.includes('profile')) return;
  const uncached = await startService({
    backend: 'embedded',
    workDir,
    env: { DATA_DIR: dataDir, CACHE_SIZE: '0' },
  });
  try {
    await uncachedProfileWorkload(context, uncached);
  } finally {
    await stopProcess(uncached.child);
  }
}

/** Starts the service on one backend, runs the workloads chosen, and stops it. */
async function runBackend(
  context: Context,
  workDir: string,
  outcome: Outcome,
  settings: {
    backend: Backend;
    env: Record<string, string>;
    afterCommon?: (service: Service) => Promise<void>;
  },
): Promise<void> {
  const { options } = context;
  const profileDir = options.cpuProfile ? join(workDir, `cpu-${settings.backend}`) : undefined;
  const service = await startService({
    backend: settings.backend,
    workDir,
    env: settings.env,
    ...(profileDir ? { cpuProfileDir: profileDir } : {}),
  });
  const report: ServiceReport = {
    backend: settings.backend,
    startMs: service.startMs,
    idleRssMb: rssMb(service.pid),
    peakRssMb: null,
  };
  outcome.services.push(report);
  try {
    if (options.workloads.includes('healthz')) await healthzWorkload(context, service);
    if (options.workloads.includes('profile')) await profileWorkload(context, service);
    if (options.workloads.includes('verify')) await verifyWorkload(context, service);
    if (options.workloads.includes('signin')) await signInWorkload(context, service);
    await settings.afterCommon?.(service);
    report.peakRssMb = peakRssMb(service.pid);
  } finally {
    await stopProcess(service.child);
  }
  if (profileDir) {
    const windows = context.windows.filter((w) => w.backend === settings.backend);
    const summary = summariseCpuProfile(profileDir, windows);
    if (summary) report.cpuProfile = summary;
  }
}

type StartupReport = {
  freshMs: number[];
  existingMs: number[];
  /** RSS as soon as the first answer came. */
  freshRssMb: number[];
  existingRssMb: number[];
};

/** Embedded `npm start` to the first 200 from /healthz, on a new and on an existing DATA_DIR. */
async function measureStartup(options: Options, workDir: string): Promise<StartupReport> {
  const report: StartupReport = { freshMs: [], existingMs: [], freshRssMb: [], existingRssMb: [] };
  for (let i = 0; i < options.startupRepeats; i++) {
    const dataDir = mkdtempSync(join(workDir, 'startup-'));
    for (const [times, rss] of [
      [report.freshMs, report.freshRssMb],
      [report.existingMs, report.existingRssMb],
    ]) {
      await waitForQuiet(Math.min(options.quietWaitSeconds, 30));
      const service = await startService({
        backend: 'embedded',
        workDir,
        env: { DATA_DIR: dataDir },
      });
      times?.push(service.startMs);
      rss?.push(rssMb(service.pid) ?? 0);
      await stopProcess(service.child);
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1] ?? 0;
  process.stdout.write(
    `  startup (embedded)                 fresh DATA_DIR ${fmt(median(report.freshMs))} ms ` +
      `(RSS ${fmt(median(report.freshRssMb))} MB), existing ${fmt(median(report.existingMs))} ms ` +
      `(RSS ${fmt(median(report.existingRssMb))} MB), median of ${options.startupRepeats}\n`,
  );
  return report;
}

// ---------------------------------------------------------------------------
// CPU profiles: self time by function and by package
// ---------------------------------------------------------------------------

type CpuProfile = {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
};

/** Self time of one stretch of the profile: the whole process, or one measured workload. */
type ProfileSlice = {
  label: string;
  sampledMs: number;
  /** Share of the samples in which the process was idle, waiting for I/O. */
  idleShare: number;
  byPackage: { name: string; selfMs: number; share: number }[];
  topFunctions: { name: string; where: string; selfMs: number; share: number }[];
};

type ProfileSummary = { file: string; slices: ProfileSlice[] };

/** A measured window, in µs of CLOCK_MONOTONIC: the clock of V8's profile timestamps too. */
type Window = { label: string; backend: Backend | 'bare'; startUs: number; endUs: number };

function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

function packageOf(url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : '(native)';
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules?.[1]) return modules[1];
  if (url.startsWith('node:')) return 'node core';
  if (url.includes('/dist/')) return 'service (dist/)';
  return url;
}

function shortUrl(url: string): string {
  return url
    .replace(/^file:\/\//, '')
    .replace(ROOT, '')
    .replace(/^.*node_modules\//, '');
}

function sliceProfile(
  profile: CpuProfile,
  label: string,
  from: number,
  to: number,
  topCount: number,
): ProfileSlice {
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byFunction = new Map<string, { name: string; where: string; us: number }>();
  const byPackage = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    at += us;
    const frame = frames.get(id);
    if (!frame || at < from || at > to) return;
    totalUs += us;
    const name = frame.functionName || '(anonymous)';
    if (name === '(idle)') idleUs += us;
    const where = frame.url ? `${shortUrl(frame.url)}:${frame.lineNumber + 1}` : '';
    const key = `${name} ${where}`;
    const entry = byFunction.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    byFunction.set(key, entry);
    const pkg = packageOf(frame.url, name);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
  });
  const share = (us: number) => (totalUs > 0 ? us / totalUs : 0);
  return {
    label,
    sampledMs: totalUs / 1000,
    idleShare: share(idleUs),
    byPackage: [...byPackage.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([name, us]) => ({ name, selfMs: us / 1000, share: share(us) })),
    topFunctions: [...byFunction.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, topCount)
      .map((f) => ({ name: f.name, where: f.where, selfMs: f.us / 1000, share: share(f.us) })),
  };
}

/** The service's profile, for the whole process and for each measured workload alone. */
function summariseCpuProfile(dir: string, windows: Window[]): ProfileSummary | undefined {
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
  const file = files.sort().at(-1);
  if (file === undefined) return undefined;
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
  return {
    file: join(dir, file),
    slices: [
      sliceProfile(profile, 'whole process', 0, Number.POSITIVE_INFINITY, 20),
      ...windows.map((w) => sliceProfile(profile, w.label, w.startUs, w.endUs, 20)),
    ],
  };
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

type TargetCheck = { target: string; goal: string; measured: string; pass: boolean };

function checkTargets(
  runs: WorkloadRun[],
  services: ServiceReport[],
  startup: StartupReport | undefined,
): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const pct = (v: number) => `${(v * 100).toFixed(0)}%`;
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  for (const run of runs) {
    const where = `${run.workload} (${run.backend})`;
    const ratio = run.ratioToBare ?? 0;
    const ofBare =
      run.bareNextTo === undefined
        ? ''
        : ` of ${fmt(run.bareNextTo)} req/s next to it; ${pct(run.ratioToBestBare ?? 0)} of the best bare run`;
    // A run whose answers are mostly not the expected ones measured something else.
    const valid = run.okShare >= 0.99;
    const note =
      (valid ? '' : ` — only ${pct(run.okShare)} answered ${run.expectedStatus}`) +
      (run.contended ? ' (contended)' : '');
    if (run.workload === 'profile') {
      checks.push({
        target: `${where}: throughput vs bare node:http`,
        goal: `≥ ${pct(GOALS.profileRatio)}`,
        measured: `${pct(ratio)} (${fmt(run.rps)} req/s${ofBare})${note}`,
        pass: valid && ratio >= GOALS.profileRatio,
      });
      checks.push({
        target: `${where}: p99 latency`,
        goal: `< ${GOALS.profileP99Ms} ms`,
        measured: `${ms(run.latencyMs.p99)}${note}`,
        pass: valid && run.latencyMs.p99 < GOALS.profileP99Ms,
      });
    } else if (run.workload === 'verify-wrong') {
      checks.push({
        target: `${where}: throughput vs reference (${fmt(REFERENCE_VERIFY_RPS)} req/s)`,
        goal: `≥ ${fmt(GOALS.verifyRps)} req/s (5×)`,
        measured: `${fmt(run.rps)} req/s (${(run.rps / REFERENCE_VERIFY_RPS).toFixed(1)}×)${note}`,
        pass: valid && run.rps >= GOALS.verifyRps,
      });
      checks.push({
        target: `${where}: throughput vs bare node:http`,
        goal: `≥ ${pct(GOALS.verifyRatio)}`,
        measured: `${pct(ratio)} (${fmt(run.rps)} req/s${ofBare})${note}`,
        pass: valid && ratio >= GOALS.verifyRatio,
      });
    } else if (run.workload === 'sign-in') {
      const rate = run.signInsPerSecond ?? 0;
      checks.push({
        target: `${where}: full sign-ins per second`,
        goal: `≥ ${fmt(GOALS.signInsPerSecond)}/s`,
        measured: `${fmt(rate)}/s${note}`,
        pass: valid && rate >= GOALS.signInsPerSecond,
      });
    } else if (run.workload === 'scale-profile' || run.workload === 'scale-referrals') {
      checks.push({
        target: `${where}: p99 latency`,
        goal: `< ${GOALS.scaleP99Ms} ms`,
        measured: `${ms(run.latencyMs.p99)}${note}`,
        pass: valid && run.latencyMs.p99 < GOALS.scaleP99Ms,
      });
    }
  }
  for (const service of services) {
    const loaded = runs.filter((r) => r.backend === service.backend && r.serviceRssMb);
    if (loaded.length === 0) continue;
    const max = Math.max(...loaded.map((r) => r.serviceRssMb?.max ?? 0));
    checks.push({
      target: `service RSS under load (${service.backend})`,
      goal: `< ${GOALS.rssMb} MB`,
      measured: `${max.toFixed(1)} MB`,
      pass: max < GOALS.rssMb,
    });
  }
  if (startup) {
    for (const [label, values] of [
      ['fresh', startup.freshMs],
      ['existing', startup.existingMs],
    ] as const) {
      const worst = Math.max(...values);
      checks.push({
        target: `embedded start to first answer, ${label} DATA_DIR (worst of ${values.length})`,
        goal: `< ${GOALS.startupMs / 1000} s`,
        measured: `${(worst / 1000).toFixed(2)} s`,
        pass: worst < GOALS.startupMs,
      });
    }
  }
  return checks;
}

type Machine = {
  cpu: string;
  cores: number;
  memoryGb: number;
  os: string;
  kernel: string;
  node: string;
  postgres: string | null;
  redis: string | null;
  loadAverageAtStart: number[];
  loadAverageAtEnd: number[];
};

async function describeMachine(options: Options): Promise<Machine> {
  let osName = os.type();
  try {
    osName = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? osName;
  } catch {
    // not Linux-like
  }
  let postgres: string | null = null;
  let redisVersion: string | null = null;
  const client = new pg.Client({ connectionString: options.pgAdminUrl });
  try {
    await client.connect();
    const result = await client.query<{ server_version: string }>('show server_version');
    postgres = result.rows[0]?.server_version ?? null;
  } catch {
    // reported as unavailable
  } finally {
    await client.end().catch(() => {});
  }
  const redis = new Redis(options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    redisVersion = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? null;
  } catch {
    // reported as unavailable
  } finally {
    redis.disconnect();
  }
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    os: osName,
    kernel: os.release(),
    node: process.version,
    postgres,
    redis: redisVersion,
    loadAverageAtStart: os.loadavg().map((v) => Number(v.toFixed(2))),
    loadAverageAtEnd: [],
  };
}

function gitDescribe(): { commit: string; dirty: boolean } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT })
      .toString()
      .trim();
    const status = execFileSync('git', ['status', '--porcelain', '--', 'src', 'drizzle'], {
      cwd: ROOT,
    }).toString();
    return { commit, dirty: status.trim() !== '' };
  } catch {
    return { commit: 'unknown', dirty: false };
  }
}

type Results = {
  date: string;
  mode: 'full' | 'quick';
  git: { commit: string; dirty: boolean };
  machine: Machine;
  settings: {
    connections: number;
    durationSeconds: number;
    warmupSeconds: number;
    loadGenerator: string;
    serviceEnv: Record<string, string>;
    /** The node command line of the service on each back-end (its README start script, plus BENCH_NODE_ARGS). */
    serviceNode: Record<string, string>;
  };
  bare: { runs: WorkloadRun[]; rps: number };
  runs: WorkloadRun[];
  services: ServiceReport[];
  startup?: StartupReport;
  seed?: SeedReport;
  targets: TargetCheck[];
  skipped: string[];
};

const percent = (ratio: number | undefined) =>
  ratio === undefined ? '' : `${(ratio * 100).toFixed(1)}%`;

function workloadTable(results: Results): string[] {
  const rows = [
    '| workload | backend | req/s | vs bare next to it | vs best bare | p50 ms | p90 ms | p99 ms | max ms | expected status | service CPU | load gen CPU | PostgreSQL CPU | Redis CPU | other CPU | steal | service RSS max |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const run of [...results.bare.runs, ...results.runs]) {
    const rate =
      run.signInsPerSecond !== undefined
        ? `${fmt(run.rps)} (${fmt(run.signInsPerSecond)} sign-ins/s)`
        : fmt(run.rps);
    rows.push(
      `| ${run.workload} | ${run.backend} | ${rate} | ${percent(run.ratioToBare)} | ${percent(run.ratioToBestBare)} | ${run.latencyMs.p50.toFixed(2)} | ${run.latencyMs.p90.toFixed(2)} | ${run.latencyMs.p99.toFixed(2)} | ${run.latencyMs.max.toFixed(1)} | ${(run.okShare * 100).toFixed(1)}% ${run.expectedStatus} | ${run.cpu.service.toFixed(0)}% | ${run.cpu.loadGenerator.toFixed(0)}% | ${run.cpu.postgres.toFixed(0)}% | ${run.cpu.redis.toFixed(0)}% | ${run.cpu.other.toFixed(0)}% | ${(run.cpu.steal * os.cpus().length).toFixed(0)}%${run.contended ? ' ⚠' : ''} | ${run.serviceRssMb ? `${run.serviceRssMb.max.toFixed(0)} MB` : ''} |`,
    );
  }
  return rows;
}

function toMarkdown(results: Results): string {
  const m = results.machine;
  const lines = [
    `# Benchmark ${results.date} (${results.mode})`,
    '',
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB, ${m.os} (${m.kernel}); Node ${m.node}, PostgreSQL ${m.postgres ?? 'n/a'}, Redis ${m.redis ?? 'n/a'}.`,
    `Load average at start ${m.loadAverageAtStart.join(' ')}, at end ${m.loadAverageAtEnd.join(' ')}.`,
    `Commit ${results.git.commit}${results.git.dirty ? ' with uncommitted changes in src/' : ''}.`,
    `Service: ${Object.entries(results.settings.serviceNode)
      .map(([backend, command]) => `${backend} \`${command}\``)
      .join(', ')}.`,
    `Load: autocannon ${results.settings.loadGenerator}, ${results.settings.connections} keep-alive connections (@N: N connections), ${results.settings.warmupSeconds} s warm-up then ${results.settings.durationSeconds} s measured per workload, in its own process. The service, the load generator, PostgreSQL and Redis share the same cores.`,
    `Ratios: "vs bare next to it" divides by the higher of the bare node:http runs measured just before and just after the workload (the host's speed drifts within minutes); the targets are judged on it. "vs best bare" divides by the highest bare run of the whole run.`,
    `CPU columns: % of one core during the measured window (service process, load generator, all postgres processes, redis-server, everything else in this machine, and steal: time the hypervisor gave to other guests).`,
    '',
    ...workloadTable(results),
    '',
    ...(results.runs.some((r) => r.contended) || results.bare.runs.some((r) => r.contended)
      ? [
          `⚠ Other processes on the machine used more than ${CONTENDED_OTHER_CPU}% of a core during the run: its figures are lower than on a quiet machine.`,
          '',
        ]
      : []),
    '## Targets (issue 6)',
    '',
    '| target | goal | measured | |',
    '|---|---|---|---|',
    ...results.targets.map(
      (t) => `| ${t.target} | ${t.goal} | ${t.measured} | ${t.pass ? 'met' : '**missed**'} |`,
    ),
    '',
  ];
  if (results.startup) {
    lines.push(
      '## Start-up (embedded, spawn to first 200 from /healthz)',
      '',
      `- fresh DATA_DIR: ${results.startup.freshMs.map((v) => `${fmt(v)} ms`).join(', ')}; RSS when ready ${results.startup.freshRssMb.map((v) => `${fmt(v)} MB`).join(', ')}`,
      `- existing DATA_DIR: ${results.startup.existingMs.map((v) => `${fmt(v)} ms`).join(', ')}; RSS when ready ${results.startup.existingRssMb.map((v) => `${fmt(v)} MB`).join(', ')}`,
      '',
    );
  }
  lines.push('## Service processes', '');
  for (const s of results.services) {
    lines.push(
      `- ${s.backend}: ready in ${fmt(s.startMs)} ms, idle RSS ${s.idleRssMb?.toFixed(0) ?? '?'} MB, peak RSS over the whole run ${s.peakRssMb?.toFixed(0) ?? '?'} MB`,
    );
  }
  lines.push('');
  if (results.seed) {
    const s = results.seed;
    lines.push(
      '## Scale data set',
      '',
      `\`npm run seed:data -- --users ${s.users} --top-referrals ${s.topReferrals}\`: ${fmt(s.totals.users)} users (${fmt(s.totals.referred)} referred), ${fmt(s.totals.apiTokens)} API tokens, in ${(s.wallMs / 1000).toFixed(1)} s (foreign key triggers ${s.foreignKeyChecks}).`,
      '',
      `Steps: ${Object.entries(s.timingsMs)
        .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`)
        .join(', ')}.`,
      '',
    );
  }
  for (const s of results.services) {
    if (!s.cpuProfile) continue;
    lines.push(`## CPU profile of the service (${s.backend})`, '', `\`${s.cpuProfile.file}\``, '');
    for (const slice of s.cpuProfile.slices) {
      lines.push(
        `### ${slice.label}: ${(slice.sampledMs / 1000).toFixed(1)} s sampled, idle ${(slice.idleShare * 100).toFixed(0)}%`,
        '',
        `By package: ${slice.byPackage.map((e) => `${e.name} ${(e.share * 100).toFixed(1)}%`).join(', ')}.`,
        '',
        '| function (self time) | where | ms | share |',
        '|---|---|--:|--:|',
        ...slice.topFunctions.map(
          (f) => `| ${f.name} | ${f.where} | ${fmt(f.selfMs)} | ${(f.share * 100).toFixed(1)}% |`,
        ),
        '',
      );
    }
  }
  if (results.skipped.length > 0) {
    lines.push('## Skipped', '', ...results.skipped.map((s) => `- ${s}`), '');
  }
  return `${lines.join('\n')}\n`;
}

function printSummary(results: Results): void {
  const out = process.stdout;
  out.write('\n');
  const header = [
    'workload',
    'backend',
    'req/s',
    'vs bare next',
    'vs best bare',
    'p50 ms',
    'p99 ms',
    'ok',
    'RSS MB',
  ];
  const rows = [...results.bare.runs, ...results.runs].map((r) => [
    `${r.workload}${r.contended ? ' *' : ''}`,
    r.backend,
    r.signInsPerSecond !== undefined
      ? `${fmt(r.rps)} (${fmt(r.signInsPerSecond)} sign-ins/s)`
      : fmt(r.rps),
    percent(r.ratioToBare),
    percent(r.ratioToBestBare),
    r.latencyMs.p50.toFixed(2),
    r.latencyMs.p99.toFixed(2),
    `${(r.okShare * 100).toFixed(1)}%`,
    r.serviceRssMb ? r.serviceRssMb.max.toFixed(0) : '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  out.write(`${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const row of rows) out.write(`${line(row)}\n`);
  const contended = [...results.bare.runs, ...results.runs].filter((r) => r.contended);
  if (contended.length > 0) {
    out.write(
      `\n* contended: other processes used more than ${CONTENDED_OTHER_CPU}% of a core during ` +
        `${contended.length} run(s); those figures are lower than on a quiet machine.\n`,
    );
  }
  out.write('\nTargets (issue 6):\n');
  for (const t of results.targets) {
    out.write(`  ${t.pass ? 'met   ' : 'MISSED'}  ${t.target}: ${t.measured} (goal ${t.goal})\n`);
  }
  for (const s of results.services) {
    if (!s.cpuProfile) continue;
    out.write(`\nCPU profile of the service (${s.backend}): ${s.cpuProfile.file}\n`);
    for (const slice of s.cpuProfile.slices) {
      out.write(
        `\n  ${slice.label} (${(slice.sampledMs / 1000).toFixed(1)} s sampled), by package: ` +
          `${slice.byPackage
            .slice(0, 8)
            .map((e) => `${e.name} ${(e.share * 100).toFixed(1)}%`)
            .join(', ')}\n`,
      );
      for (const f of slice.topFunctions.slice(0, 12)) {
        out.write(`    ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.name}  ${f.where}\n`);
      }
    }
  }
  for (const s of results.skipped) out.write(`skipped: ${s}\n`);
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const date = new Date();
  const stamp = date.toISOString().replace(/\..*$/, '').replaceAll(':', '-');
  const workDir = mkdtempSync(join(os.tmpdir(), 'bench-'));
  cleanups.push(async () => {
    if (!options.cpuProfile) rmSync(workDir, { recursive: true, force: true });
  });
  const interrupted = () => {
    process.stderr.write('\ninterrupted: stopping everything started\n');
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  if (options.build) {
    process.stdout.write('building (npm run build)…\n');
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
  }
  if (!existsSync(join(ROOT, 'dist', 'server.js'))) {
    throw new Error('dist/server.js is missing: run `npm run build`, or leave out --no-build');
  }
  const machine = await describeMachine(options);
  process.stdout.write(
    `${options.quick ? 'quick' : 'full'} run: ${machine.cpu}, ${machine.cores} cores, ` +
      `load average ${machine.loadAverageAtStart.join(' ')}; ${options.connections} connections, ` +
      `${options.warmupSeconds} s warm-up + ${options.durationSeconds} s per workload\n`,
  );

  const context: Context = { options, runs: [], windows: [] };
  const outcome: Outcome = { services: [], skipped: [] };
  let startup: StartupReport | undefined;
  try {
    context.baseline = { service: await startBare(), runs: [], latest: null };
    // One bare run at the start, so that every run has its best bare figure.
    await measureBare(context);
    if (options.backends.includes('postgres')) await runPostgres(context, workDir, outcome);
    if (options.backends.includes('embedded')) await runEmbedded(context, workDir, outcome);
    if (options.backends.includes('memory')) {
      await runBackend(context, workDir, outcome, {
        backend: 'memory',
        env: { DATABASE_URL: 'memory://' },
      });
    }
    if (options.workloads.includes('startup')) startup = await measureStartup(options, workDir);
  } finally {
    await cleanUp();
  }

  const bareRuns = context.baseline?.runs ?? [];
  const bareRps = Math.max(...bareRuns.map((r) => r.rps));
  for (const run of context.runs) run.ratioToBestBare = run.rps / bareRps;
  machine.loadAverageAtEnd = os.loadavg().map((v) => Number(v.toFixed(2)));
  const autocannonVersion = (
    JSON.parse(readFileSync(join(ROOT, 'node_modules', 'autocannon', 'package.json'), 'utf8')) as {
      version: string;
    }
  ).version;
  const results: Results = {
    date: date.toISOString(),
    mode: options.quick ? 'quick' : 'full',
    git: gitDescribe(),
    machine,
    settings: {
      connections: options.connections,
      durationSeconds: options.durationSeconds,
      warmupSeconds: options.warmupSeconds,
      loadGenerator: autocannonVersion,
      serviceEnv: {
        NODE_ENV: 'development',
        LOG_LEVEL: 'warn',
        SMS_CONSOLE_DELAY_MS: '0',
        ...OPEN_LIMITS,
      },
      serviceNode: Object.fromEntries(
        (['postgres', 'embedded'] as const).map((backend) => [
          backend,
          ['node', ...serviceNodeArgs(backend), 'dist/server.js'].join(' '),
        ]),
      ),
    },
    bare: { runs: bareRuns, rps: bareRps },
    runs: context.runs,
    services: outcome.services,
    ...(startup ? { startup } : {}),
    ...(outcome.seed ? { seed: outcome.seed } : {}),
    targets: checkTargets(context.runs, outcome.services, startup),
    skipped: outcome.skipped,
  };
  printSummary(results);
  if (options.write) {
    mkdirSync(RESULTS_DIR, { recursive: true });
    const suffix = options.quick ? '-quick' : '';
    const json = `${JSON.stringify(results, null, 2)}\n`;
    const markdown = toMarkdown(results);
    for (const name of [`${stamp}${suffix}`, `latest${suffix}`]) {
      writeFileSync(join(RESULTS_DIR, `${name}.json`), json);
      writeFileSync(join(RESULTS_DIR, `${name}.md`), markdown);
    }
    process.stdout.write(
      `\nwritten: bench/results/${stamp}${suffix}.{json,md} and latest${suffix}.{json,md}\n`,
    );
  }
  if (options.cpuProfile) process.stdout.write(`CPU profiles kept in ${workDir}\n`);
}

if (process.argv.includes('--load-worker')) {
  try {
    await runLoadWorker();
  } catch (error) {
    const message: WorkerMessage = { type: 'error', message: (error as Error).message };
    process.send?.(message, () => process.exit(1));
  }
} else {
  try {
    await main();
  } catch (error) {
    process.stderr.write(`bench failed: ${(error as Error).stack ?? error}\n`);
    await cleanUp();
    process.exitCode = 1;
  }
}
