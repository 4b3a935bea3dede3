/**
 * Paired A/B of the service: this checkout against another commit, both under
 * load at the same time. `npm run bench:paired -- --base <rev>`; `--help`
 * lists the options.
 *
 * The host's speed drifts by a third from one minute to the next, so two runs
 * one after the other compare minutes as much as code. Here both builds run
 * at once on the same core (the load generator on the other), loaded by the
 * same number of connections, for a few seconds a round, as new processes
 * every round. Each gets the CPU the scheduler gives it, and the figure
 * compared is the CPU time each spent per request it answered: whatever the
 * host does in a round, it does to both.
 * Traffic goes to 127.0.0.1 only; everything started is stopped by its pid,
 * and the databases made are dropped.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { call, expectOk, inPool } from './lib/client.js';
import { HOST, median, ROOT } from './lib/common.js';
import { cleanups, stopProcess, cleanUp as stopStarted } from './lib/processes.js';
import { processCpuUs } from './lib/sampling.js';
import { type Service, startService } from './lib/service.js';
import { OPEN_LIMITS } from './lib/service-settings.js';

const CONNECTIONS = 64;

const USAGE = `npm run bench:paired -- --base <git revision> [options]

  --base REV          the commit to compare this checkout with (required)
  --workload W        verify (wrong codes, default) | profile | healthz
  --backend B         embedded (default) | postgres (PostgreSQL + Redis on 127.0.0.1)
  --rounds N          rounds of concurrent load (default 8)
  --duration S        seconds per round (default 3)
  --numbers N         verify: numbers with a live code, guessed in turn (default 1500)
  --max-attempts N    verify: OTP_MAX_ATTEMPTS of both services (default 100: no code is
                      voided in a round; 5, the service's default, with enough --numbers
                      makes every fifth wrong guess void a code, the audited one)
`;

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    workload: { type: 'string', default: 'verify' },
    backend: { type: 'string', default: 'embedded' },
    rounds: { type: 'string', default: '8' },
    duration: { type: 'string', default: '3' },
    numbers: { type: 'string', default: '1500' },
    'max-attempts': { type: 'string', default: OPEN_LIMITS.OTP_MAX_ATTEMPTS },
    help: { type: 'boolean', default: false },
  },
});
if (values.help || !values.base) {
  process.stdout.write(USAGE);
  process.exit(values.help ? 0 : 2);
}
const NUMBERS = Number(values.numbers);
const MAX_ATTEMPTS = values['max-attempts'];
const workload = values.workload as 'verify' | 'profile' | 'healthz';
const backend = values.backend as 'embedded' | 'postgres';
if (
  !['verify', 'profile', 'healthz'].includes(workload) ||
  !['embedded', 'postgres'].includes(backend) ||
  !(NUMBERS >= 1) ||
  !(Number(MAX_ATTEMPTS) >= 1)
) {
  process.stdout.write(USAGE);
  process.exit(2);
}

type Build = {
  name: 'base' | 'this';
  dir: string;
  env: Record<string, string>;
  service: Service | undefined;
  pid: number;
  url: string;
  tokens: string[];
  cpuUsPerRequest: number[];
  requestsPerSecond: number[];
};

type AcResult = { requests: { average: number; total: number }; non2xx: number; errors: number };
type AcRequest = {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  setupRequest?: (request: AcRequest) => AcRequest;
};
const autocannon = createRequire(import.meta.url)('autocannon') as (
  options: { url: string; connections: number; duration: number; requests: AcRequest[] },
  done: (error: Error | null, result: AcResult) => void,
) => unknown;

const workDir = mkdtempSync(join(os.tmpdir(), 'bench-paired-'));

function sh(command: string, args: string[], cwd = ROOT): string {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function post(build: Build, path: string, body: object): Promise<Record<string, unknown>> {
  return expectOk(call(build.url, 'POST', path, { body: { ...body } }), path);
}

const phone = (i: number) => `+7999${2_000_000 + i}`;

async function inBatches(count: number, work: (i: number) => Promise<void>): Promise<void> {
  await inPool(
    Array.from({ length: count }, (_, i) => i),
    50,
    work,
  );
}

/** The environment of a build's service; on PostgreSQL, a throwaway database and a Redis logical database of its own. */
function prepare(build: Build, redisDb: number): void {
  build.env = { DATA_DIR: join(workDir, `data-${build.name}`), OTP_MAX_ATTEMPTS: MAX_ATTEMPTS };
  if (backend !== 'postgres') return;
  const database = `bench_paired_${build.name}_${randomBytes(4).toString('hex')}`;
  sh('psql', ['-h', HOST, '-U', 'postgres', '-qc', `create database ${database}`]);
  cleanups.push(async () => {
    sh('psql', ['-h', HOST, '-U', 'postgres', '-qc', `drop database if exists ${database}`]);
  });
  sh('redis-cli', ['-h', HOST, '-n', String(redisDb), 'flushdb']);
  cleanups.push(async () => void sh('redis-cli', ['-h', HOST, '-n', String(redisDb), 'flushdb']));
  build.env.DATABASE_URL = `postgres://postgres@${HOST}:5432/${database}`;
  build.env.REDIS_URL = `redis://${HOST}:6379/${redisDb}`;
}

/** Both services on core 1; this process (the load generator) on core 0. */
async function start(build: Build): Promise<void> {
  const service = await startService({
    backend,
    env: build.env,
    workDir,
    root: build.dir,
    cpus: '1',
  });
  build.service = service;
  build.pid = service.pid;
  build.url = service.baseUrl;
}

async function stop(build: Build): Promise<void> {
  const service = build.service;
  build.service = undefined;
  if (service) await stopProcess(service.child);
}

/** A code for each number, so that every guess is a wrong one at a live code (and attempts start again). */
async function issueCodes(build: Build): Promise<void> {
  await inBatches(NUMBERS, async (i) => {
    await post(build, '/api/auth/request-code/', { phone_number: phone(i) });
  });
  const probe = await fetch(`${build.url}/api/auth/verify-code/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ phone_number: phone(0), code: '0000000' }),
  });
  const answer = (await probe.json()) as { code?: string };
  if (answer.code !== 'invalid_code') throw new Error(`a wrong code: ${JSON.stringify(answer)}`);
}

async function signInTokens(build: Build): Promise<void> {
  build.tokens = [];
  await inBatches(100, async (i) => {
    const { dev_code } = await post(build, '/api/auth/request-code/', { phone_number: phone(i) });
    const { token } = await post(build, '/api/auth/verify-code/', {
      phone_number: phone(i),
      code: dev_code,
    });
    build.tokens.push(String(token));
  });
}

function requestsOf(build: Build): AcRequest[] {
  let next = 0;
  if (workload === 'healthz') return [{ method: 'GET', path: '/healthz' }];
  if (workload === 'profile') {
    return [
      {
        method: 'GET',
        path: '/api/profile/',
        setupRequest: (request) => ({
          ...request,
          headers: { authorization: `Token ${build.tokens[next++ % build.tokens.length]}` },
        }),
      },
    ];
  }
  // The codes are 6 digits or fewer: seven zeros is never one.
  return [
    {
      method: 'POST',
      path: '/api/auth/verify-code/',
      headers: { 'content-type': 'application/json' },
      setupRequest: (request) => ({
        ...request,
        body: JSON.stringify({ phone_number: phone(next++ % NUMBERS), code: '0000000' }),
      }),
    },
  ];
}

function load(build: Build, seconds: number): Promise<AcResult> {
  return new Promise((resolve, reject) => {
    autocannon(
      { url: build.url, connections: CONNECTIONS, duration: seconds, requests: requestsOf(build) },
      (error, result) => (error ? reject(error) : resolve(result)),
    );
  });
}

async function main(): Promise<void> {
  sh('taskset', ['-a', '-cp', '0', String(process.pid)]);
  const baseDir = join(workDir, 'base');
  sh('git', ['worktree', 'add', '--detach', baseDir, String(values.base)]);
  cleanups.push(async () => void sh('git', ['worktree', 'remove', '--force', baseDir]));
  symlinkSync(join(ROOT, 'node_modules'), join(baseDir, 'node_modules'));
  process.stdout.write(`building ${values.base} and this checkout…\n`);
  sh('npx', ['tsc', '-p', 'tsconfig.build.json'], baseDir);
  sh('npx', ['tsc', '-p', 'tsconfig.build.json']);
  const build = (name: Build['name'], dir: string): Build => ({
    name,
    dir,
    env: {},
    service: undefined,
    pid: 0,
    url: '',
    tokens: [],
    cpuUsPerRequest: [],
    requestsPerSecond: [],
  });
  const builds = [build('base', baseDir), build('this', ROOT)];
  prepare(builds[0] as Build, 11);
  prepare(builds[1] as Build, 12);
  cleanups.push(async () => {
    for (const each of builds) await stop(each);
  });
  const seconds = Number(values.duration);
  process.stdout.write(
    `${workload} on ${backend}: ${values.rounds} rounds of ${seconds} s, ${CONNECTIONS} connections to each\n`,
  );
  for (let round = 1; round <= Number(values.rounds); round++) {
    // New processes every round, started and loaded in alternating order: a
    // service that gets slightly ahead takes more requests per turn of its
    // event loop, each cheaper, and keeps its lead while it runs. Within one
    // pair of processes that alone made identical builds differ by 5-7%.
    const order = round % 2 === 0 ? [1, 0] : [0, 1];
    for (const i of order) await start(builds[i] as Build);
    for (const build of builds) {
      if (workload === 'verify') await issueCodes(build);
      if (workload === 'profile') await signInTokens(build);
    }
    // A second of load first, so that both are compiled hot before measuring.
    await Promise.all(builds.map((build) => load(build, 1)));
    if (workload === 'verify') for (const build of builds) await issueCodes(build);
    const before = builds.map((build) => processCpuUs(build.pid));
    const loads: Promise<AcResult>[] = [];
    for (const i of order) loads[i] = load(builds[i] as Build, seconds);
    const results = await Promise.all(loads);
    const line = builds.map((build, i) => {
      const result = results[i] as AcResult;
      const expected =
        workload === 'verify' ? result.non2xx : result.requests.total - result.non2xx;
      if (result.errors > 0 || expected !== result.requests.total)
        throw new Error(`${build.name}: ${result.errors} errors, ${result.non2xx} non-2xx answers`);
      const perRequest = (processCpuUs(build.pid) - (before[i] ?? 0)) / result.requests.total;
      build.cpuUsPerRequest.push(perRequest);
      build.requestsPerSecond.push(result.requests.average);
      return `${build.name} ${Math.round(result.requests.average)} req/s, ${perRequest.toFixed(1)} µs CPU/request`;
    });
    const [base, current] = builds as [Build, Build];
    const ratio = (current.cpuUsPerRequest.at(-1) ?? 0) / (base.cpuUsPerRequest.at(-1) ?? 1);
    process.stdout.write(`  ${round}: ${line.join(' | ')} | this/base ${ratio.toFixed(3)}\n`);
    for (const build of builds) await stop(build);
  }
  const [base, current] = builds as [Build, Build];
  const ratios = current.cpuUsPerRequest.map((us, i) => us / (base.cpuUsPerRequest[i] ?? us));
  process.stdout.write(
    `CPU per request, this / base: median ${median(ratios).toFixed(3)} (rounds ${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)}); ` +
      `req/s median ${Math.round(median(base.requestsPerSecond))} (base) and ${Math.round(median(current.requestsPerSecond))} (this)\n`,
  );
}

/** Stops what was started, drops what was made: once, at the end or on Ctrl-C. */
let cleaning: Promise<void> | undefined;
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    await stopStarted();
    rmSync(workDir, { recursive: true, force: true });
  })();
  return cleaning;
}
const interrupted = () => {
  process.stderr.write('\ninterrupted: stopping everything started\n');
  void cleanUp().finally(() => process.exit(130));
};
process.once('SIGINT', interrupted);
process.once('SIGTERM', interrupted);

try {
  await main();
} catch (error) {
  // After Ctrl-C, requests in flight fail as the services stop: that is no news.
  if (cleaning === undefined) {
    process.stderr.write(`bench:paired failed: ${(error as Error).stack ?? error}\n`);
    process.exitCode = 1;
  }
} finally {
  await cleanUp();
}
