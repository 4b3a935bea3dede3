import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { killAll, root, signIn, startService, stop, waitUntilReady } from './service-process.js';

const tree = mkdtempSync(join(tmpdir(), 'referral-production-'));

afterEach(killAll);
afterAll(() => rmSync(tree, { recursive: true, force: true }));

describe('a production install', () => {
  it('a built tree installed with npm ci --omit=dev runs the service', async () => {
    // What an image or a deployment ships: the build and what it reads at run time.
    for (const entry of ['package.json', 'package-lock.json', 'dist', 'drizzle', 'web']) {
      expect(existsSync(join(root, entry)), `${entry} (npm run build makes dist/)`).toBe(true);
      cpSync(join(root, entry), join(tree, entry), { recursive: true });
    }
    expect(existsSync(join(tree, 'dist', 'pglite-seed')), 'the PGlite seed is part of dist/').toBe(
      true,
    );

    // From the local npm cache: the packages are those of package-lock.json,
    // which `npm ci` put there when this checkout was installed.
    const { stdout } = await promisify(execFile)(
      'npm',
      ['ci', '--omit=dev', '--offline', '--no-audit', '--no-fund', '--foreground-scripts'],
      { cwd: tree, shell: process.platform === 'win32', maxBuffer: 16 * 1024 * 1024 },
    );
    expect(stdout).toContain(
      'prepare: no development dependencies (npm ci --omit=dev): dist/ is used as built',
    );
    for (const development of ['typescript', 'vitest', 'tsx', '@biomejs/biome', 'drizzle-kit']) {
      expect(existsSync(join(tree, 'node_modules', development)), development).toBe(false);
    }

    const service = await startService(
      { DATA_DIR: join(tree, 'data'), SMS_CONSOLE_DELAY_MS: '0' },
      { cwd: tree },
    );
    await waitUntilReady(service);
    await signIn(service.base, '+79995550401');
    for (const page of ['/', '/api/docs/', '/api/openapi.json']) {
      expect((await fetch(`${service.base}${page}`)).status, page).toBe(200);
    }
    expect(await stop(service)).toBe(0);
  }, 300_000);
});
