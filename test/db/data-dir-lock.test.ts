import {
  linkSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/client.js';
import {
  type DataDirLock,
  DataDirLockError,
  LOCK_FILE_NAME,
  lockDataDir,
} from '../../src/db/data-dir-lock.js';

const dirs: string[] = [];
const held: DataDirLock[] = [];
function tempDir(name = 'referral-lock-'): string {
  const dir = mkdtempSync(join(tmpdir(), name));
  dirs.push(dir);
  return dir;
}
async function lock(dir: string): Promise<DataDirLock> {
  const taken = await lockDataDir(dir);
  held.push(taken);
  return taken;
}

afterEach(async () => {
  for (const taken of held.splice(0)) await taken.release();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** What a killed holder leaves: a socket file that nothing listens on any more. */
async function leaveDeadSocket(path: string): Promise<void> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  // A second name keeps the socket file when closing removes the first.
  linkSync(path, `${path}.dead`);
  await new Promise((resolve) => server.close(resolve));
  renameSync(`${path}.dead`, path);
}

const inUse = (dir: string) =>
  `DATA_DIR ${dir} is in use by another process (pid ${process.pid}): only one process at a time may open the embedded database; stop that one (the service, npm run migrate or the CLI) or set another DATA_DIR`;

describe('the DATA_DIR lock', () => {
  it('is refused while held, with a one-line error naming the directory, and free once released', async () => {
    const dir = tempDir();
    const first = await lock(dir);

    const refused = await lockDataDir(dir).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(DataDirLockError);
    expect((refused as DataDirLockError).message).toBe(inUse(dir));
    expect((refused as DataDirLockError).dataDir).toBe(dir);

    await first.release();
    await lock(dir);
  });

  it('takes over a lock whose process is gone, at once', async () => {
    const dir = tempDir();
    const path = join(dir, LOCK_FILE_NAME);
    await leaveDeadSocket(path);
    expect(statSync(path).isSocket()).toBe(true);

    await lock(dir);

    await expect(lockDataDir(dir)).rejects.toThrow(inUse(dir));
  });

  it('of many processes finding the same dead lock, exactly one takes it over', async () => {
    const dir = tempDir();
    await leaveDeadSocket(join(dir, LOCK_FILE_NAME));

    const results = await Promise.allSettled(Array.from({ length: 8 }, () => lockDataDir(dir)));

    const taken = results.filter((r) => r.status === 'fulfilled');
    expect(taken).toHaveLength(1);
    held.push((taken[0] as PromiseFulfilledResult<DataDirLock>).value);
    for (const result of results.filter((r) => r.status === 'rejected')) {
      expect((result as PromiseRejectedResult).reason).toBeInstanceOf(DataDirLockError);
    }
  });

  it('takes over a stray file or a takeover left half done', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, LOCK_FILE_NAME), 'not a socket');
    await lock(dir);

    const other = tempDir();
    await leaveDeadSocket(join(other, LOCK_FILE_NAME));
    const mutex = join(other, `${LOCK_FILE_NAME}.takeover`);
    mkdirSync(mutex);
    // Its process died inside the takeover (milliseconds long), long ago.
    utimesSync(mutex, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    await lock(other);
  });

  it.runIf(process.platform === 'linux')(
    'works for a directory whose path is too long for a Unix socket address',
    async () => {
      const dir = join(tempDir(), 'd'.repeat(120));
      mkdirSync(dir);
      await lock(dir);
      await expect(lockDataDir(dir)).rejects.toThrow(inUse(dir));
    },
  );

  it('is taken by openDatabase for a DATA_DIR, and released by close', async () => {
    const dir = join(tempDir(), 'data');
    const logger = pino({ level: 'silent' });
    const open = () => openDatabase({ url: undefined, dataDir: dir, poolSize: 1, logger });
    const database = await open();

    await expect(open()).rejects.toThrow(inUse(dir));
    // In-memory databases share nothing and take no lock.
    const memory = await openDatabase({ url: 'memory://', dataDir: dir, poolSize: 1, logger });
    await memory.close();

    await database.close();
    const again = await open();
    await again.close();
  });
});
