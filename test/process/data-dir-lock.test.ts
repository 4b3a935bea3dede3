import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { LOCK_FILE_NAME } from '../../src/db/data-dir-lock.js';
import {
  killAll,
  profilePhone,
  runNode,
  signIn,
  startService,
  stop,
  waitUntilReady,
} from './service-process.js';

const dirs: string[] = [];
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'referral-lock-'));
  dirs.push(dir);
  return dir;
}
const quiet = { SMS_CONSOLE_DELAY_MS: '0' };

afterEach(killAll);
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function inUseMessage(dir: string, pid: number | undefined): string {
  return `DATA_DIR ${dir} is in use by another process (pid ${pid}): only one process at a time may open the embedded database; stop that one (the service, npm run migrate or the CLI) or set another DATA_DIR\n`;
}

describe('one embedded DATA_DIR, one process', () => {
  it('a second service and npm run migrate refuse it, naming it; the first keeps serving and its data survives', async () => {
    const dir = dataDir();
    const first = await startService({ DATA_DIR: dir, ...quiet });
    await waitUntilReady(first);
    const token = await signIn(first.base, '+79995550201');

    const second = await startService({ DATA_DIR: dir, ...quiet });
    expect(await second.exited).toBe(1);
    expect(second.stderr()).toBe(inUseMessage(dir, first.child.pid));
    const migrate = runNode('dist/db/migrate-cli.js', { DATA_DIR: dir });
    expect(await migrate.exited).toBe(1);
    expect(migrate.stderr()).toBe(inUseMessage(dir, first.child.pid));

    // The first one never noticed: it serves, and a user signed up now is kept too.
    expect(await profilePhone(first.base, token)).toBe('+79995550201');
    const later = await signIn(first.base, '+79995550202');
    expect(await stop(first)).toBe(0);
    expect(existsSync(join(dir, LOCK_FILE_NAME)), 'a clean stop removes the lock').toBe(false);

    const restarted = await startService({ DATA_DIR: dir, ...quiet });
    await waitUntilReady(restarted);
    expect(await profilePhone(restarted.base, token)).toBe('+79995550201');
    expect(await profilePhone(restarted.base, later)).toBe('+79995550202');
    expect(await stop(restarted)).toBe(0);
  });

  it('the lock of a SIGKILLed service is taken over at the next start, and its data is there', async () => {
    const dir = dataDir();
    const killed = await startService({ DATA_DIR: dir, ...quiet });
    await waitUntilReady(killed);
    const token = await signIn(killed.base, '+79995550203');
    await stop(killed, 'SIGKILL');
    expect(statSync(join(dir, LOCK_FILE_NAME)).isSocket(), 'the lock is left behind').toBe(true);

    const next = await startService({ DATA_DIR: dir, ...quiet }, { port: killed.port });
    await waitUntilReady(next);
    expect(await profilePhone(next.base, token)).toBe('+79995550203');

    // And the new holder's lock is as good as the first one's.
    const migrate = runNode('dist/db/migrate-cli.js', { DATA_DIR: dir });
    expect(await migrate.exited).toBe(1);
    expect(migrate.stderr()).toBe(inUseMessage(dir, next.child.pid));
    expect(await stop(next)).toBe(0);
  });
});

/** As in containers: each service is PID 1 of its own PID namespace (needs root and util-linux). */
const canUnshare =
  process.platform === 'linux' &&
  spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0;
const asPid1 = ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child'];

describe.runIf(canUnshare)('one embedded DATA_DIR, each service PID 1 of its container', () => {
  it('a second PID 1 refuses a live lock; after a kill -9, the next PID 1 takes it over', async () => {
    const dir = dataDir();
    const first = await startService({ DATA_DIR: dir, ...quiet }, { wrap: asPid1 });
    await waitUntilReady(first);
    const token = await signIn(first.base, '+79995550204');

    const second = await startService({ DATA_DIR: dir, ...quiet }, { wrap: asPid1 });
    expect(await second.exited).toBe(1);
    expect(second.stderr()).toBe(inUseMessage(dir, 1));

    // SIGKILL to unshare reaches its child as SIGKILL (--kill-child).
    await stop(first, 'SIGKILL');
    const next = await startService({ DATA_DIR: dir, ...quiet }, { wrap: asPid1 });
    await waitUntilReady(next);
    expect(await profilePhone(next.base, token)).toBe('+79995550204');
    await stop(next, 'SIGKILL');
  });
});
