import { connect, type Socket } from 'node:net';

/** An HTTP answer read off a raw socket. */
export type RawAnswer = {
  status: number;
  headers: Record<string, string>;
  body: string;
};

/** How the server left the connection: closed cleanly (FIN), reset, or still open. */
export type Ending = 'closed' | 'reset' | 'open';

/**
 * A raw TCP connection to a listening app, for what app.inject cannot send:
 * malformed HTTP, bodies that stall, several requests on one keep-alive socket.
 */
export class RawConnection {
  private readonly socket: Socket;
  private buffer = Buffer.alloc(0);
  private ending: Ending = 'open';
  private readonly waiters = new Set<() => void>();
  readonly opened: Promise<void>;

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.opened = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    this.socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.wake();
    });
    this.socket.on('error', () => {
      this.ending = 'reset';
      this.wake();
    });
    this.socket.on('end', () => {
      if (this.ending === 'open') this.ending = 'closed';
      this.wake();
    });
    this.socket.on('close', () => {
      if (this.ending === 'open') this.ending = 'closed';
      this.wake();
    });
  }

  static async open(port: number): Promise<RawConnection> {
    const connection = new RawConnection(port);
    await connection.opened;
    return connection;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  private wake(): void {
    for (const waiter of this.waiters) waiter();
  }

  private async until<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return await new Promise<T>((resolve, reject) => {
      const attempt = () => {
        const value = check();
        if (value === undefined) return false;
        cleanup();
        resolve(value);
        return true;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = () => void attempt();
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
      attempt();
    });
  }

  /** Reads one answer (Content-Length framed, or chunked), leaving the rest in the buffer. */
  async answer(timeoutMs = 5000): Promise<RawAnswer> {
    return await this.until(() => this.takeAnswer(), timeoutMs, 'answer');
  }

  /** Resolves with how the connection ended, once it has (or 'open' after timeoutMs). */
  async end(timeoutMs = 5000): Promise<Ending> {
    try {
      return await this.until(
        () => (this.ending === 'open' ? undefined : this.ending),
        timeoutMs,
        'end',
      );
    } catch {
      return 'open';
    }
  }

  get state(): Ending {
    return this.ending;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private takeAnswer(): RawAnswer | undefined {
    const text = this.buffer.toString('latin1');
    const headEnd = text.indexOf('\r\n\r\n');
    if (headEnd < 0) return undefined;
    const [statusLine = '', ...lines] = text.slice(0, headEnd).split('\r\n');
    const status = Number(statusLine.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    // An interim answer (100 Continue) is skipped.
    if (status >= 100 && status < 200) {
      this.buffer = this.buffer.subarray(headEnd + 4);
      return this.takeAnswer();
    }
    let rest = this.buffer.subarray(headEnd + 4);
    let body: Buffer;
    if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (rest.length < length) return undefined;
      body = rest.subarray(0, length);
      rest = rest.subarray(length);
    } else if (headers['transfer-encoding'] === 'chunked') {
      const chunks: Buffer[] = [];
      for (;;) {
        const lineEnd = rest.indexOf('\r\n');
        if (lineEnd < 0) return undefined;
        const size = Number.parseInt(rest.subarray(0, lineEnd).toString('latin1'), 16);
        if (rest.length < lineEnd + 2 + size + 2) return undefined;
        chunks.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size));
        rest = rest.subarray(lineEnd + 2 + size + 2);
        if (size === 0) break;
      }
      body = Buffer.concat(chunks);
    } else {
      // Delimited by the end of the connection.
      if (this.ending === 'open') return undefined;
      body = rest;
      rest = Buffer.alloc(0);
    }
    this.buffer = rest;
    return { status, headers, body: body.toString('utf8') };
  }
}
