import net from 'node:net';
import { StartupError } from './wait-until-reachable.js';

/**
 * Checks, before any storage is opened, that HOST:PORT can be listened on:
 * a busy port then ends start-up with one line and no data touched. The port
 * is let go again at once rather than held until the app is built: held, it
 * would accept connections that no one answers while start-up waits for the
 * database or migrates, and a load balancer would see a hung instance rather
 * than a refused one. Whoever takes it in between makes the real listen fail,
 * with the same message (listenError).
 */
export async function checkCanListen(host: string, port: number): Promise<void> {
  if (port === 0) return;
  const server = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, exclusive: true }, resolve);
    });
  } catch (error) {
    throw listenError(error, host, port);
  }
  await new Promise((resolve) => server.close(resolve));
}

/** A failed listen as one line naming PORT or HOST. */
export function listenError(error: unknown, host: string, port: number): StartupError {
  const { code, message } = error as NodeJS.ErrnoException;
  switch (code) {
    case 'EADDRINUSE':
      return new StartupError(
        `PORT ${port} is already in use on ${host}: stop what listens there, or set another PORT`,
      );
    case 'EACCES':
      return new StartupError(
        `PORT ${port} on ${host} needs privileges this process lacks (EACCES): set a PORT above 1023`,
      );
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
      return new StartupError(`HOST ${host} is not an address of this machine (${code})`);
    default:
      return new StartupError(`cannot listen on ${host}:${port} (HOST, PORT): ${message}`);
  }
}
