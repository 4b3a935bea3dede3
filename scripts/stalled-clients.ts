/**
 * Opens many connections that send headers and part of a body, then nothing,
 * against a running service, and reports how many the service has closed
 * over time and whether a new client still gets an answer meanwhile. With no
 * request timeout they stayed open for ever, and as many as the process has
 * file descriptors made every new connection fail.
 *
 *   npx tsx scripts/stalled-clients.ts [url=http://127.0.0.1:8000] [connections=1100] [seconds=15]
 *
 * Run the service with a file-descriptor limit below the count to see the
 * difference, e.g. `ulimit -n 1024; npm start`.
 */
import { connect, type Socket } from 'node:net';

const target = new URL(process.argv[2] ?? 'http://127.0.0.1:8000');
const count = Number(process.argv[3] ?? 1100);
const seconds = Number(process.argv[4] ?? 15);
const port = Number(target.port || 80);

const stalled: Socket[] = [];
let connected = 0;
let answered408 = 0;
let closed = 0;
const startedMs = Date.now();

for (let i = 0; i < count; i++) {
  const socket = connect(port, target.hostname);
  socket.on('error', () => {});
  socket.on('close', () => closed++);
  socket.on('data', (chunk: Buffer) => {
    if (chunk.toString('latin1').startsWith('HTTP/1.1 408')) answered408++;
  });
  socket.on('connect', () => {
    connected++;
    socket.write(
      `POST /api/auth/request-code/ HTTP/1.1\r\nHost: ${target.host}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"phone_nu`,
    );
  });
  stalled.push(socket);
}

/** A new client on a new connection: its status line, or why it got none within 2 s. */
function probe(): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, target.hostname);
    let text = '';
    const done = (result: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done('no answer in 2 s'), 2000);
    socket.on('connect', () =>
      socket.write(`GET /healthz HTTP/1.1\r\nHost: ${target.host}\r\nConnection: close\r\n\r\n`),
    );
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.includes('\r\n')) done(text.slice(0, text.indexOf('\r\n')));
    });
    socket.on('error', (error) => done(`failed (${(error as NodeJS.ErrnoException).code})`));
    socket.on('close', () => done('closed without an answer'));
  });
}

for (let second = 1; second <= seconds; second++) {
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const elapsed = ((Date.now() - startedMs) / 1000).toFixed(0);
  process.stdout.write(
    `${elapsed} s: ${count - closed} of ${count} stalled connections open (${connected} accepted, ${answered408} answered 408); new client: ${await probe()}\n`,
  );
}
for (const socket of stalled) socket.destroy();
