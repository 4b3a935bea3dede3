/**
 * Runs the Dockerfile's steps without Docker, in a clean temporary directory:
 * each stage's COPY lines copy from this checkout (or an earlier stage) as
 * Docker would, its RUN lines run the same npm commands, and the last stage's
 * CMD starts the service in production mode against the local PostgreSQL and
 * Redis. Then its HEALTHCHECK command, /healthz, /readyz, a sign-in through
 * the webhook SMS provider and /metrics are checked, and it is stopped with
 * SIGTERM. Prints the time of each step.
 *
 *   npx tsx scripts/docker-dry-run.ts
 *
 * Environment: DRY_RUN_DATABASE_URL (a server to create a throwaway database
 * on; default postgres://postgres@127.0.0.1:5432/postgres), DRY_RUN_REDIS_URL
 * (default redis://127.0.0.1:6379/9), DRY_RUN_PORT (default 18701; the SMS
 * sink listens on the next port), DRY_RUN_ONLINE=1 revalidates npm's cache with
 * the registry (default: prefer the cache), KEEP=1 keeps the directory.
 *
 * What it cannot show: the base image (node:20-bookworm-slim) is this
 * machine's Node.js, and USER is not switched (chown goes to the current user).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const root = fileURLToPath(new URL('..', import.meta.url));

type Instruction = { keyword: string; args: string };
type Stage = { name: string; base: string; instructions: Instruction[] };

/** Dockerfile lines, continuations joined, comments and parser directives dropped. */
export function parseDockerfile(text: string): Stage[] {
  const lines: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    lines.push(`${pending}${line}`.trim());
    pending = '';
  }
  const stages: Stage[] = [];
  for (const line of lines) {
    const [keyword = '', ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (keyword.toUpperCase() === 'FROM') {
      const match = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      stages.push({
        name: match?.[2] ?? String(stages.length),
        base: match?.[1] ?? '',
        instructions: [],
      });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`${keyword} before FROM`);
      stage.instructions.push({ keyword: keyword.toUpperCase(), args });
    }
  }
  return stages;
}

/** `K=V K2="V 2"` of an ENV line. */
export function parseEnvArgs(args: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [, key, quoted, plain] of args.matchAll(/(\w+)=(?:"([^"]*)"|(\S*))/g))
    env[key as string] = quoted ?? plain ?? '';
  return env;
}

/** The JSON-array (exec) form of CMD and HEALTHCHECK CMD. */
export function execForm(args: string): string[] {
  const json = args.slice(args.indexOf('['));
  const parsed = JSON.parse(json) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string'))
    throw new Error(`not an exec-form command: ${args}`);
  return parsed;
}

function du(path: string): string {
  const result = spawnSync('du', ['-sh', path], { encoding: 'utf8' });
  return result.stdout.split('\t')[0] ?? '?';
}

const timings: [string, number][] = [];
async function step<T>(label: string, work: () => T | Promise<T>): Promise<T> {
  const started = performance.now();
  process.stdout.write(`- ${label}\n`);
  const value = await work();
  timings.push([label, (performance.now() - started) / 1000]);
  return value;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function expectStatus(res: Response, status: number, what: string) {
  if (res.status !== status) throw new Error(`${what}: HTTP ${res.status}, expected ${status}`);
}

async function run(work: string): Promise<void> {
  const stages = parseDockerfile(readFileSync(join(root, 'Dockerfile'), 'utf8'));
  const dirs = new Map<string, { dir: string; workdir: string }>();
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  let runtimeEnv: Record<string, string> = {};
  let cmd: string[] = [];
  let healthcheck: string[] = [];
  let runtimeDir = '';

  for (const stage of stages) {
    const dir = join(work, stage.name);
    mkdirSync(dir, { recursive: true });
    let workdir = '/';
    const env: Record<string, string> = {};
    // Paths inside the image map to the stage's directory.
    const inStage = (path: string) =>
      join(dir, relative(workdir, isAbsolute(path) ? path : join(workdir, path)));
    for (const { keyword, args } of stage.instructions) {
      switch (keyword) {
        case 'WORKDIR':
          workdir = args;
          break;
        case 'ENV':
          Object.assign(env, parseEnvArgs(args));
          break;
        case 'COPY': {
          const words = args.split(/\s+/);
          const from = words.find((w) => w.startsWith('--from='))?.slice(7);
          const paths = words.filter((w) => !w.startsWith('--'));
          const dest = paths.pop() as string;
          await step(`[${stage.name}] COPY ${args}`, () => {
            for (const source of paths) {
              const origin = from ? dirs.get(from) : undefined;
              if (from && !origin) throw new Error(`COPY --from=${from}: no such stage`);
              const src = origin
                ? join(origin.dir, relative(origin.workdir, source))
                : join(root, source);
              const target =
                dest.endsWith('/') || paths.length > 1
                  ? join(inStage(dest), basename(source))
                  : inStage(dest);
              cpSync(src, target, { recursive: true });
            }
          });
          break;
        }
        case 'RUN': {
          // Build-cache mounts only speed Docker up; here npm uses its usual cache.
          const command = args
            .replace(/^(--mount=\S+\s+)+/, '')
            .replaceAll(workdir, dir)
            .replaceAll('node:node', `${uid}:${gid}`);
          await step(`[${stage.name}] RUN ${args}`, () => {
            const result = spawnSync('sh', ['-c', command], {
              cwd: dir,
              env: {
                PATH: process.env.PATH,
                HOME: process.env.HOME,
                // Packages already in npm's cache are taken from it without asking the
                // registry again (DRY_RUN_ONLINE=1: as Docker would, with a cold cache).
                ...(process.env.DRY_RUN_ONLINE === '1'
                  ? {}
                  : { npm_config_prefer_offline: 'true' }),
                ...env,
              },
              stdio: 'inherit',
            });
            if (result.status !== 0) throw new Error(`RUN failed (${result.status}): ${args}`);
          });
          break;
        }
        case 'CMD':
          cmd = execForm(args);
          break;
        case 'HEALTHCHECK':
          healthcheck = execForm(args);
          break;
        default:
          // USER, EXPOSE, ARG, LABEL: nothing to do outside a container.
          break;
      }
    }
    dirs.set(stage.name, { dir, workdir });
    runtimeEnv = env;
    runtimeDir = dir;
  }

  // A throwaway database, and a receiver for the webhook SMS provider.
  const adminUrl =
    process.env.DRY_RUN_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const dbName = `docker_dry_run_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database "${dbName}"`);
  const databaseUrl = new URL(adminUrl);
  databaseUrl.pathname = `/${dbName}`;
  const port = Number(process.env.DRY_RUN_PORT ?? 18701);
  const smsSecret = randomBytes(16).toString('hex');
  const messages: { to: string; text: string }[] = [];
  const sink = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => {
      body += chunk;
    });
    request.on('end', () => {
      const timestamp = String(request.headers['x-webhook-timestamp']);
      const expected = createHmac('sha256', smsSecret).update(`${timestamp}.${body}`).digest('hex');
      const signed = request.headers['x-webhook-signature'] === `sha256=${expected}`;
      if (signed) messages.push(JSON.parse(body));
      response.writeHead(signed ? 200 : 401).end();
    });
  });
  sink.listen(port + 1, '127.0.0.1');

  let server: ChildProcess | undefined;
  let output = '';
  try {
    // The tools: what the lockfile installs for development only. A dev
    // dependency that a production one also needs (yaml, for @fastify/swagger)
    // is a production package there, and belongs in the image.
    const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const tools = Object.keys(
      (
        JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
          devDependencies: Record<string, string>;
        }
      ).devDependencies,
    ).filter((name) => lock.packages[`node_modules/${name}`]?.dev === true);
    const leaked = tools.filter((name) => existsSync(join(runtimeDir, 'node_modules', name)));
    if (leaked.length > 0) throw new Error(`dev dependencies in the runtime stage: ${leaked}`);
    const metricsToken = randomBytes(16).toString('hex');
    const [command = 'node', ...commandArgs] = cmd;
    const base = `http://127.0.0.1:${port}`;
    await step('CMD: start, until /healthz answers', async () => {
      server = spawn(command === 'node' ? process.execPath : command, commandArgs, {
        cwd: runtimeDir,
        env: {
          PATH: process.env.PATH,
          ...runtimeEnv,
          // Loopback only on this machine; the image listens on 0.0.0.0.
          HOST: '127.0.0.1',
          PORT: String(port),
          DATABASE_URL: databaseUrl.toString(),
          REDIS_URL: process.env.DRY_RUN_REDIS_URL ?? 'redis://127.0.0.1:6379/9',
          SECRET_KEY: randomBytes(32).toString('hex'),
          SMS_PROVIDER: 'webhook',
          SMS_WEBHOOK_URL: `http://127.0.0.1:${port + 1}/sms`,
          SMS_WEBHOOK_SECRET: smsSecret,
          METRICS_TOKEN: metricsToken,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const collect = (chunk: Buffer) => {
        output += chunk;
      };
      server.stdout?.on('data', collect);
      server.stderr?.on('data', collect);
      await waitFor(
        async () => {
          if (server?.exitCode !== null) throw new Error(`server exited:\n${output}`);
          return (await fetch(`${base}/healthz`)).ok;
        },
        60_000,
        '/healthz',
      );
    });
    await step('HEALTHCHECK command', () => {
      const [hc = 'node', ...hcArgs] = healthcheck;
      const result = spawnSync(hc === 'node' ? process.execPath : hc, hcArgs, {
        env: { PATH: process.env.PATH, ...runtimeEnv, PORT: String(port) },
        timeout: 10_000,
      });
      if (result.status !== 0) throw new Error(`HEALTHCHECK exited ${result.status}`);
    });
    await step('/readyz, a sign-in through the webhook provider, /metrics', async () => {
      const ready = await fetch(`${base}/readyz`);
      expectStatus(ready, 200, '/readyz');
      const phone = `+7999${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;
      const post = (path: string, body: object) =>
        fetch(`${base}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      const sent = await post('/api/auth/request-code/', { phone_number: phone });
      expectStatus(sent, 200, 'request-code');
      if ('dev_code' in ((await sent.json()) as object)) throw new Error('dev_code in production');
      const code = messages.find((m) => m.to === phone)?.text.match(/\d{4,10}/)?.[0];
      if (!code) throw new Error('no SMS reached the webhook');
      const signedIn = await post('/api/auth/verify-code/', { phone_number: phone, code });
      expectStatus(signedIn, 200, 'verify-code');
      expectStatus(await fetch(`${base}/metrics`), 401, '/metrics without the token');
      const metrics = await fetch(`${base}/metrics`, {
        headers: { authorization: `Bearer ${metricsToken}` },
      });
      expectStatus(metrics, 200, '/metrics');
      const text = await metrics.text();
      if (!text.includes('sign_ins_total{new_user="true"} 1'))
        throw new Error('/metrics does not count the sign-in');
    });
    await step('SIGTERM: exit', async () => {
      const exited = new Promise<number | null>((resolve) => server?.once('exit', resolve));
      server?.kill('SIGTERM');
      const code = await exited;
      if (code !== 0) throw new Error(`exit code ${code} after SIGTERM:\n${output}`);
    });
  } finally {
    if (server && server.exitCode === null) server.kill('SIGKILL');
    sink.close();
    await admin.query(`drop database if exists "${dbName}" with (force)`);
    await admin.end();
    const runtimeSize = du(runtimeDir);
    const modulesSize = du(join(runtimeDir, 'node_modules'));
    process.stdout.write('\nstep seconds\n');
    for (const [label, seconds] of timings)
      process.stdout.write(`${seconds.toFixed(1).padStart(6)}  ${label}\n`);
    process.stdout.write(
      `runtime stage: ${runtimeSize} (node_modules ${modulesSize}); base image not included\n`,
    );
  }
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'docker-dry-run-'));
  try {
    await run(work);
  } finally {
    if (process.env.KEEP !== '1') rmSync(work, { recursive: true, force: true });
    else process.stdout.write(`kept ${work}\n`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error) => {
    process.stderr.write(`${error instanceof Error ? error.message : error}\n`);
    process.exit(1);
  });
}
