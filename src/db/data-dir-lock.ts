import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, rmSync, statSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A DATA_DIR that this process may not open: another process has it, or it
 * cannot be locked at all. The message is one line, naming the directory, for
 * the service, `npm run migrate` or a CLI to print as it is.
 */
export class DataDirLockError extends Error {
  override name = 'DataDirLockError';
  constructor(
    readonly dataDir: string,
    message: string,
  ) {
    super(message);
  }
}

export interface DataDirLock {
  release(): Promise<void>;
}

/** The lock's name inside DATA_DIR. */
export const LOCK_FILE_NAME = 'service.lock';

/** Unix socket paths are cut at 104-108 bytes, silently; longer ones go through /proc. */
const MAX_SOCKET_PATH_BYTES = 100;
/** A takeover holds its mutex for milliseconds; one this old was left by a killed process. */
const STALE_TAKEOVER_MS = 5000;
/** How long a refusal waits for the holder to tell its pid (its event loop may be busy). */
const PID_ANSWER_MS = 1000;

/**
 * Locks an embedded database directory for this process: two PGlite engines
 * on one directory each keep their own view of it, and lose each other's
 * writes. Call it before anything in the directory is touched, and release
 * the lock after the database is closed.
 *
 * The lock is a Unix socket listened on inside the directory. The kernel
 * accepts connections to it for as long as its process lives and refuses
 * them the moment the process is gone, however it ended (kill -9, OOM
 * killer, power loss), whatever its PID (a container's service is PID 1 at
 * every start), and also from another container sharing the volume. So a
 * lock left behind is known to be dead at once and is taken over without
 * waiting, and a live one is never taken. A PID file cannot tell a dead
 * PID 1 from the live one of the next start, nor see into another container.
 * On Windows the lock is a named pipe, which vanishes with its process.
 */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const dir = resolve(dataDir);
  const address = socketAddress(dir);
  try {
    // A handful of rounds: each ends in a lock, a refusal, or a stale lock removed.
    for (let round = 0; round < 10; round++) {
      const server = net.createServer(answerWithPid);
      if (await listen(server, address.path)) return holdingLock(server, address);
      const holder = await probe(address.path, { askPid: true });
      if (holder.state === 'alive') throw inUse(dir, holder.pid);
      if (holder.state === 'dead') await removeDeadLock(dir, address.path);
    }
    throw new Error('the lock kept changing hands');
  } catch (error) {
    address.close();
    if (error instanceof DataDirLockError) throw error;
    throw new DataDirLockError(
      dir,
      `cannot lock DATA_DIR ${dir}: ${(error as Error).message} (the lock is a Unix socket, ${join(dir, LOCK_FILE_NAME)}, so the directory must be on a file system that supports them)`,
    );
  }
}

function inUse(dir: string, pid: number | undefined): DataDirLockError {
  const by = pid === undefined ? 'another process' : `another process (pid ${pid})`;
  return new DataDirLockError(
    dir,
    `DATA_DIR ${dir} is in use by ${by}: only one process at a time may open the embedded database; stop that one (the service, npm run migrate or the CLI) or set another DATA_DIR`,
  );
}

type SocketAddress = { path: string; close(): void };

function socketAddress(dir: string): SocketAddress {
  if (process.platform === 'win32') {
    const id = createHash('sha256').update(dir.toLowerCase()).digest('hex').slice(0, 32);
    return { path: `\\\\.\\pipe\\phone-referral-data-${id}`, close: () => {} };
  }
  const path = join(dir, LOCK_FILE_NAME);
  if (Buffer.byteLength(path) <= MAX_SOCKET_PATH_BYTES) return { path, close: () => {} };
  if (process.platform !== 'linux') {
    throw new DataDirLockError(
      dir,
      `cannot lock DATA_DIR ${dir}: its path is too long for a Unix socket (at most ${MAX_SOCKET_PATH_BYTES - LOCK_FILE_NAME.length - 1} bytes); use a shorter DATA_DIR`,
    );
  }
  // The same socket by a short name: this process's handle on the directory.
  const fd = openSync(dir, 'r');
  let open = true;
  return {
    path: `/proc/self/fd/${fd}/${LOCK_FILE_NAME}`,
    close: () => {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

function holdingLock(server: net.Server, address: SocketAddress): DataDirLock {
  // The lock never keeps the process alive: at exit the kernel drops it anyway.
  server.unref();
  let released: Promise<void> | undefined;
  return {
    release: () => {
      // Closing removes the socket file before the socket itself, so no
      // other process ever sees it dead and removes a lock taken after it.
      released ??= new Promise<void>((done) => server.close(() => done())).finally(address.close);
      return released;
    },
  };
}

function answerWithPid(socket: net.Socket): void {
  socket.on('error', () => {});
  socket.end(`${process.pid}\n`);
}

/** Listens on the lock's address: true when this process now holds it, false when it is taken. */
function listen(server: net.Server, path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (error.code === 'EADDRINUSE') resolve(false);
      else reject(error);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve(true);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(path);
  });
}

type Holder = { state: 'alive'; pid?: number } | { state: 'dead' } | { state: 'gone' };

/**
 * Asks the kernel whether the lock's process lives: a connection is accepted
 * (alive), refused (its process is gone and left the file behind), or there
 * is no lock at all any more. Anything else counts as alive: when in doubt,
 * refuse rather than share the directory.
 */
function probe(path: string, options: { askPid: boolean }): Promise<Holder> {
  return new Promise((resolve) => {
    const socket = net.connect(path);
    let answer = '';
    const alive = () => {
      const pid = Number.parseInt(answer, 10);
      resolve(Number.isSafeInteger(pid) && pid > 0 ? { state: 'alive', pid } : { state: 'alive' });
      socket.destroy();
    };
    socket.on('connect', () => {
      if (!options.askPid) return alive();
      socket.setTimeout(PID_ANSWER_MS, alive);
      socket.on('data', (chunk) => {
        answer += chunk;
      });
      socket.on('end', alive);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') resolve({ state: 'dead' });
      else if (error.code === 'ENOENT') resolve({ state: 'gone' });
      else resolve({ state: 'alive' });
    });
  });
}

/**
 * Removes a lock whose process is gone. Two processes may find it dead at
 * once; the first to take the takeover mutex checks again and removes it,
 * the second then finds it gone or held. Only a holder of the mutex ever
 * removes the socket file, and only one it has just seen dead: a live lock
 * cannot appear in its place while the file is still there.
 */
async function removeDeadLock(dir: string, path: string): Promise<void> {
  const mutex = join(dir, `${LOCK_FILE_NAME}.takeover`);
  for (;;) {
    try {
      mkdirSync(mutex);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (ageMs(mutex) > STALE_TAKEOVER_MS) rmSync(mutex, { recursive: true, force: true });
      else await sleep(20);
    }
  }
  try {
    const holder = await probe(path, { askPid: false });
    if (holder.state === 'dead') unlinkSync(path);
  } finally {
    rmSync(mutex, { recursive: true, force: true });
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}
