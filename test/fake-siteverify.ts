import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A local stand-in for the providers' siteverify endpoints: never a real network call. */
export class FakeSiteverify {
  readonly calls: Record<string, string>[] = [];
  answer: 'success' | 'failure' | 'error' | 'garbage' = 'success';
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    const server = createServer(async (request: IncomingMessage, response) => {
      let body = '';
      for await (const chunk of request) body += chunk;
      this.calls.push(Object.fromEntries(new URLSearchParams(body)));
      if (this.answer === 'error') {
        response.writeHead(500).end('oops');
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(
        this.answer === 'garbage'
          ? '<html>'
          : JSON.stringify({ success: this.answer === 'success', 'error-codes': [] }),
      );
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/siteverify`;
  }

  async stop(): Promise<void> {
    await new Promise((resolve) => this.server?.close(resolve));
  }
}
