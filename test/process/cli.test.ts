import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { RedisStore } from '../../src/store/redis-store.js';
import {
  auth,
  backends,
  createTestApp,
  deleteTestKeys,
  nextPhone,
  signIn,
  type TestApp,
} from '../helper.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

type Result = { code: number | null; stdout: string; stderr: string };

/** `npm run cli -- …` from source, with only the given environment. */
function cli(args: string[], env: Record<string, string>): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/admin/cli.ts', ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const lines = (text: string) => text.split('\n').filter((line) => line !== '');

describe('the admin CLI on the embedded database', { timeout: 300_000 }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'referral-cli-'));
  const env = { DATA_DIR: dataDir };
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('explains itself, and refuses a bad command line with exit status 2', async () => {
    const help = await cli(['--help'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: npm run cli -- <command>/);
    for (const command of [
      'create-admin',
      'revoke-admin',
      'block',
      'unblock',
      'revoke-tokens',
      'stats',
    ]) {
      expect(help.stdout).toContain(command);
    }
    const cases: [string[], string][] = [
      [[], 'cli: no command given'],
      [['promote', '+79990000001'], 'cli: unknown command "promote"'],
      [['block'], 'cli: block needs a phone number'],
      [['block', '+79990000001', 'extra'], 'cli: too many arguments for block'],
      [['block', 'not-a-number'], 'cli: "not-a-number" is not a valid phone number'],
      [['stats', '--force'], "cli: Unknown option '--force'"],
    ];
    for (const [args, message] of cases) {
      const result = await cli(args, env);
      expect(result.code, args.join(' ')).toBe(2);
      expect(lines(result.stderr)[0], args.join(' ')).toContain(message);
      expect(result.stdout).toBe('');
    }
  });

  it('runs each command on DATA_DIR, takes numbers in any format, and audits each as cli', async () => {
    const created = await cli(['create-admin', '8 (999) 000-00-01'], env);
    expect(created).toEqual({
      code: 0,
      stdout: '+79990000001 (user 1) is an admin; the user was created\n',
      stderr: '',
    });
    const again = await cli(['create-admin', '+7 999 000-00-01'], env);
    expect(again.stdout).toBe('+79990000001 (user 1) is an admin\n');

    const unknown = await cli(['block', '+7 999 000-00-02'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('cli: no user has the number +79990000002\n');

    for (const [args, out] of [
      [['block', '89990000001'], '+79990000001 (user 1) is blocked; tokens revoked: 0'],
      [['unblock', '+79990000001'], '+79990000001 (user 1) is unblocked and may sign in again'],
      [['revoke-tokens', '+79990000001'], '+79990000001 (user 1): tokens revoked: 0'],
      [['revoke-admin', '+79990000001'], '+79990000001 (user 1) is no longer an admin'],
    ] as const) {
      const result = await cli([...args], env);
      expect(result, args.join(' ')).toEqual({ code: 0, stdout: `${out}\n`, stderr: '' });
    }
    const stats = await cli(['stats', '--json'], env);
    expect(stats.code).toBe(0);
    expect(JSON.parse(stats.stdout)).toEqual({
      users_total: 1,
      users_last_24h: 1,
      activations_total: 0,
      activations_last_24h: 0,
      sign_ins_last_24h: 0,
      top_referrers: [],
    });
    const text = await cli(['stats'], env);
    expect(lines(text.stdout)[0]).toBe('users        1 (1 in the last 24 hours)');

    // The CLI is gone: the directory is free to read.
    const db = await PGlite.create(dataDir);
    try {
      const { rows } = await db.query<{
        type: string;
        actor: string;
        user_id: number;
        details: object;
      }>('select type, actor, user_id, details from audit_log order by id');
      expect(rows.map((row) => [row.type, row.actor, Number(row.user_id)])).toEqual([
        ['admin_grant', 'cli', 1],
        ['admin_grant', 'cli', 1],
        ['admin_block', 'cli', 1],
        ['admin_unblock', 'cli', 1],
        ['admin_revoke_tokens', 'cli', 1],
        ['admin_revoke', 'cli', 1],
      ]);
      expect(rows[0]?.details).toMatchObject({ created_user: true, host: expect.any(String) });
      const user = await db.query<{ is_staff: boolean; is_blocked: boolean }>(
        'select is_staff, is_blocked from users where id = 1',
      );
      expect(user.rows[0]).toEqual({ is_staff: false, is_blocked: false });
    } finally {
      await db.close();
    }
  });

  // The CLI opens the database as the service does, so it meets the service's DATA_DIR lock.
  it('says so, in one line, when the service holds DATA_DIR', async () => {
    const port = 18_800 + Math.floor(Math.random() * 100);
    const server = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? '',
        DATA_DIR: dataDir,
        PORT: String(port),
        LOG_LEVEL: 'warn',
      },
      stdio: 'ignore',
    });
    try {
      for (let i = 0; i < 300; i++) {
        if (
          await fetch(`http://127.0.0.1:${port}/healthz`).then(
            (r) => r.ok,
            () => false,
          )
        )
          break;
        await new Promise((r) => setTimeout(r, 200));
      }
      const refused = await cli(['stats'], env);
      expect(refused.code).toBe(1);
      expect(lines(refused.stderr)).toHaveLength(1);
      expect(refused.stderr).toContain(dataDir);
      expect(refused.stderr).toMatch(/in use/);
    } finally {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
    }
  });
});

describe.runIf(backends.includes('postgres'))(
  'the admin CLI on PostgreSQL + Redis',
  { timeout: 300_000 },
  () => {
    let t: TestApp | undefined;
    let redis: RedisStore | undefined;
    /** Key patterns of what the unprefixed instance and the CLI wrote, deleted after the test. */
    const written: string[] = [];
    afterEach(async () => {
      await t?.close();
      await redis?.close();
      t = undefined;
      redis = undefined;
      for (const pattern of written.splice(0)) await deleteTestKeys(pattern);
    });

    it("acts on a running service's database and store: its warm caches drop the user at once", async () => {
      // The service's store without the tests' key prefix, as the CLI sees Redis.
      redis = await RedisStore.connect({
        url: process.env.TEST_REDIS_URL as string,
        logger: pino({ level: 'silent' }),
      });
      const shared = redis;
      t = await createTestApp({ backend: 'postgres', wrapStore: () => shared });
      const env = {
        DATABASE_URL: t.storage.databaseUrl as string,
        REDIS_URL: process.env.TEST_REDIS_URL as string,
      };
      const get = (token: string, url = '/api/profile/') =>
        (t as TestApp).app.inject({ method: 'GET', url, headers: auth(token) });

      const phone = nextPhone();
      const staff = await signIn(t, phone);
      written.push(`*${phone}*`, `uv:{${staff.user.id}}:*`);
      for (let warm = 0; warm < 2; warm++)
        expect((await get(staff.token, '/api/admin/stats/')).statusCode).toBe(403);
      const granted = await cli(['create-admin', phone], env);
      expect(granted.code, granted.stderr).toBe(0);
      expect(granted.stdout).toBe(`${phone} (user ${staff.user.id}) is an admin\n`);
      expect((await get(staff.token, '/api/admin/stats/')).statusCode).toBe(200);

      const user = await signIn(t);
      written.push(`*${user.user.phone_number}*`, `uv:{${user.user.id}}:*`);
      for (let warm = 0; warm < 2; warm++) expect((await get(user.token)).statusCode).toBe(200);
      const blocked = await cli(['block', user.user.phone_number], env);
      expect(blocked.stdout).toBe(
        `${user.user.phone_number} (user ${user.user.id}) is blocked; tokens revoked: 1\n`,
      );
      expect((await get(user.token)).statusCode).toBe(401);

      const audit = (
        await get(staff.token, `/api/admin/audit/?user_id=${user.user.id}&type=admin_block`)
      ).json();
      expect(audit.results).toEqual([
        expect.objectContaining({ type: 'admin_block', actor: 'cli', actor_id: null, ip: null }),
      ]);

      expect((await cli(['revoke-admin', phone], env)).code).toBe(0);
      expect((await get(staff.token, '/api/admin/stats/')).statusCode).toBe(403);

      const stats = await cli(['stats', '--json'], env);
      // The test app's clock is fake; the CLI's is real: only the totals agree.
      expect(JSON.parse(stats.stdout)).toMatchObject({ users_total: 2, activations_total: 0 });
    });

    it('says in one line when the database cannot be reached', async () => {
      const result = await cli(['stats'], {
        DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere',
      });
      expect(result.code).toBe(1);
      expect(lines(result.stderr)).toHaveLength(1);
      expect(result.stderr).toMatch(/^cli: .*ECONNREFUSED/);
    });
  },
);
