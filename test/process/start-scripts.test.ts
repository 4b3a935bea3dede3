import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, deleteTestKeys, isTestKey, listTestKeys } from '../helper.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const scripts = (
  JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  }
).scripts;
const onPostgres = Boolean(process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL);

/** The node flags of a start script, which must be `node [flags] dist/server.js`. */
function nodeFlags(script: string): string[] {
  const words = (scripts[script] ?? '').trim().split(/\s+/);
  expect(words[0], `npm run ${script}`).toBe('node');
  expect(words.at(-1), `npm run ${script}`).toBe('dist/server.js');
  return words.slice(1, -1);
}

/**
 * Runs a start script's command as npm would (the compiled service from
 * `npm install`), signs in through it, and stops it with SIGTERM. Answers
 * what it logged on start: which database and store it runs on.
 */
async function startAndSignIn(script: string, env: Record<string, string>) {
  expect(existsSync(join(root, 'dist', 'server.js')), 'dist/ is built by npm install').toBe(true);
  const port = 20_000 + randomInt(2000);
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [...nodeFlags(script), 'dist/server.js'], {
    cwd: root,
    env: { PATH: process.env.PATH, PORT: String(port), LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => {
    output += d;
  });
  child.stderr.on('data', (d: Buffer) => {
    output += d;
  });
  try {
    for (const deadline = Date.now() + 60_000; ; ) {
      if (child.exitCode !== null) throw new Error(`npm run ${script} exited:\n${output}`);
      if (Date.now() > deadline) throw new Error(`npm run ${script} did not start:\n${output}`);
      try {
        if ((await fetch(`${base}/readyz`)).ok) break;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const phone_number = `+7999${String(randomInt(10_000_000)).padStart(7, '0')}`;
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
    expect(((await verified.json()) as { token: string }).token).toMatch(/^[0-9a-f]{40}$/);
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'exit');
  }
  expect(child.exitCode, output).toBe(0);
  const listening = output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { msg?: string; database?: string; store?: string })
    .find((line) => line.msg?.startsWith('listening on'));
  return { database: listening?.database, store: listening?.store };
}

describe('the start scripts', () => {
  it('npm start serves on the embedded database', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'referral-start-'));
    try {
      expect(await startAndSignIn('start', { DATA_DIR: dataDir })).toEqual({
        database: 'pglite',
        store: 'memory',
      });
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);

  it.runIf(onPostgres)(
    'npm run start:postgres serves on PostgreSQL and Redis',
    async () => {
      const database = await createTestDatabase();
      // The service has no key prefix: its keys are the new ones outside the tests' `t:` namespace
      // (TEST_REDIS_URL names a database for tests alone).
      const keysBefore = new Set(await listTestKeys('*'));
      try {
        expect(
          await startAndSignIn('start:postgres', {
            DATABASE_URL: database.url,
            REDIS_URL: process.env.TEST_REDIS_URL as string,
          }),
        ).toEqual({ database: 'postgres', store: 'redis' });
      } finally {
        await deleteTestKeys('*', (key) => !isTestKey(key) && !keysBefore.has(key));
        await database.drop();
      }
    },
    90_000,
  );

  it('the two differ only in the heap, larger on PostgreSQL, and in the compiler of PGlite', () => {
    const embedded = nodeFlags('start');
    const postgres = nodeFlags('start:postgres');
    const sized = (flags: string[], name: string) =>
      Number(flags.find((f) => f.startsWith(`${name}=`))?.split('=')[1]);
    // A larger young generation, and more room before a full collection
    // (bench/README.md, "Two start scripts").
    for (const name of ['--max-semi-space-size', '--heap-growing-percent']) {
      expect(sized(postgres, name)).toBeGreaterThan(sized(embedded, name));
    }
    // PGlite's WebAssembly on V8's baseline compiler alone (src/db/pglite.ts says why).
    expect(embedded).toContain('--liftoff-only');
    expect(postgres).not.toContain('--liftoff-only');
    const others = (flags: string[]) =>
      flags.filter(
        (f) =>
          !f.startsWith('--max-semi-space-size=') &&
          !f.startsWith('--heap-growing-percent=') &&
          f !== '--liftoff-only',
      );
    expect(others(postgres)).toEqual(others(embedded));
  });

  it('the other commands that may open PGlite run it on the same compiler', () => {
    expect(scripts.migrate).toBe('node --liftoff-only dist/db/migrate-cli.js');
    expect(scripts.cli).toBe('node --liftoff-only dist/admin/cli.js');
  });
});
