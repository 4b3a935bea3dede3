import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helper.js';
import { RawConnection } from '../raw-http.js';

/**
 * Clients that open a connection and stall hold a file descriptor each; with
 * no timeout, enough of them make every new connection fail. The timeouts
 * here are set short for the test; the bounds asserted are on a failure mode
 * (a connection left open for ever), generous for a noisy machine.
 */
describe('slow and stalled clients (embedded)', () => {
  let t: TestApp;
  let port: number;
  beforeAll(async () => {
    t = await createTestApp({
      env: { REQUEST_TIMEOUT_SECONDS: '1', KEEP_ALIVE_TIMEOUT_SECONDS: '2' },
    });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    port = (t.app.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await t?.close();
  });

  // 1 s of request timeout, checked every second: closed after 1-2 s.
  const closedWithinMs = 8000;
  const timedOut = { error: 'The request was not received in time.', code: 'request_timeout' };

  it('closes a connection whose body stalls, with a 408 request_timeout', async () => {
    const connection = await RawConnection.open(port);
    connection.write(
      'POST /api/auth/request-code/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"phone_nu',
    );
    const answer = await connection.answer(closedWithinMs);
    expect(answer.status).toBe(408);
    expect(answer.headers.connection).toBe('close');
    expect(JSON.parse(answer.body)).toEqual(timedOut);
    expect(await connection.end(closedWithinMs)).toBe('closed');
  });

  it('closes a connection whose body trickles in too slowly to finish in time', async () => {
    const connection = await RawConnection.open(port);
    connection.write(
      'POST /api/auth/request-code/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n',
    );
    // A byte every 200 ms keeps the socket busy: only the whole-request timeout ends it.
    const trickle = setInterval(() => {
      if (connection.state === 'open') connection.write(' ');
    }, 200);
    try {
      const answer = await connection.answer(closedWithinMs);
      expect(answer.status).toBe(408);
      expect(JSON.parse(answer.body)).toEqual(timedOut);
      expect(await connection.end(closedWithinMs)).toBe('closed');
    } finally {
      clearInterval(trickle);
    }
  });

  it('closes a connection whose headers stall', async () => {
    const connection = await RawConnection.open(port);
    connection.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    const answer = await connection.answer(closedWithinMs);
    expect(answer.status).toBe(408);
    expect(JSON.parse(answer.body)).toEqual(timedOut);
    expect(await connection.end(closedWithinMs)).toBe('closed');
  });

  it('closes a connection that never sends anything, without an answer', async () => {
    const connection = await RawConnection.open(port);
    expect(await connection.end(closedWithinMs)).toBe('closed');
  });

  it('closes an idle keep-alive connection after KEEP_ALIVE_TIMEOUT_SECONDS, and says so', async () => {
    const connection = await RawConnection.open(port);
    connection.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const answer = await connection.answer();
    expect(answer.status).toBe(200);
    expect(answer.headers['keep-alive']).toBe('timeout=2');
    expect(await connection.end(closedWithinMs)).toBe('closed');
  });

  it('a body that arrives in parts, in time, is served', async () => {
    const connection = await RawConnection.open(port);
    const body = '{"phone_number":""}';
    connection.write(
      `POST /api/auth/request-code/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    connection.write(body.slice(5));
    const answer = await connection.answer();
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body).code).toBe('validation_error');
    connection.destroy();
  });
});

describe('HTTP timeouts by default', () => {
  it('are 10 s for a whole request and 75 s for an idle keep-alive connection', async () => {
    const t = await createTestApp();
    try {
      const server = t.app.server;
      expect(server.requestTimeout).toBe(10_000);
      expect(server.headersTimeout).toBe(10_000);
      expect(server.keepAliveTimeout).toBe(75_000);
      expect(server.timeout).toBe(120_000);
    } finally {
      await t.close();
    }
  });
});
