import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helper.js';
import { RawConnection } from '../raw-http.js';

/**
 * Requests app.inject cannot make: broken HTTP, sent over raw sockets to a
 * listening app. Every answer has the standard body, and a connection the
 * server gives up on is closed cleanly (its answer says Connection: close, and
 * the client sees the end of the stream, not a reset).
 */
describe('HTTP protocol errors (embedded)', () => {
  let t: TestApp;
  let port: number;
  beforeAll(async () => {
    t = await createTestApp();
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    port = (t.app.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await t?.close();
  });

  const json = 'application/json; charset=utf-8';
  const malformed = { error: 'The request is not valid HTTP.', code: 'bad_request' };

  async function send(data: string): Promise<RawConnection> {
    const connection = await RawConnection.open(port);
    connection.write(data);
    return connection;
  }

  it('a bad percent-escape in the path is a 400 bad_request that does not echo the URL', async () => {
    for (const path of ['/%', '/api/%zz/', '/api/profile/%E0%A4%A']) {
      const connection = await send(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      const answer = await connection.answer();
      expect(answer.status, path).toBe(400);
      expect(answer.headers['content-type'], path).toBe(json);
      expect(JSON.parse(answer.body), path).toEqual({
        error: 'The request URL is not valid.',
        code: 'bad_request',
      });
      // An ordinary answer: the connection stays usable.
      connection.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      expect((await connection.answer()).status, path).toBe(200);
      connection.destroy();
    }
  });

  const broken: [string, string][] = [
    [
      'a negative Content-Length',
      'POST /api/auth/request-code/ HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
    ],
    [
      'two Content-Lengths',
      'POST /api/auth/request-code/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}',
    ],
    [
      'Content-Length with Transfer-Encoding',
      'POST /api/auth/request-code/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
    ['a NUL in a header', 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Test: a\u0000b\r\n\r\n'],
    ['an unknown HTTP version', 'GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n'],
    ['no request line at all', 'hello\r\n\r\n'],
    ['an HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
  ];
  for (const [name, request] of broken) {
    it(`${name} is a 400 bad_request, and the connection closes cleanly`, async () => {
      const connection = await send(request);
      const answer = await connection.answer();
      expect(answer.status).toBe(400);
      expect(answer.headers.connection).toBe('close');
      expect(answer.headers['content-type']).toBe(json);
      expect(JSON.parse(answer.body)).toEqual(malformed);
      expect(await connection.end()).toBe('closed');
    });
  }

  it('headers over the size limit are a 431 headers_too_large', async () => {
    const connection = await send(
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    const answer = await connection.answer();
    expect(answer.status).toBe(431);
    expect(answer.headers.connection).toBe('close');
    expect(JSON.parse(answer.body)).toEqual({
      error: 'The request headers are too large.',
      code: 'headers_too_large',
    });
    expect(await connection.end()).toBe('closed');
  });

  it('a keep-alive client reads the refusal and a clean close, even with more data in flight', async () => {
    const connection = await send('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await connection.answer()).status).toBe(200);
    // A broken request followed by a large body the server never reads as a request.
    connection.write(
      `POST /api/auth/request-code/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n${'x'.repeat(200_000)}`,
    );
    const answer = await connection.answer();
    expect(answer.status).toBe(400);
    expect(answer.headers.connection).toBe('close');
    expect(JSON.parse(answer.body)).toEqual(malformed);
    expect(await connection.end()).toBe('closed');
  });

  it('an Expect other than 100-continue is a 417 expectation_failed', async () => {
    const connection = await send(
      'POST /api/auth/request-code/ HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}',
    );
    const answer = await connection.answer();
    expect(answer.status).toBe(417);
    expect(answer.headers.connection).toBe('close');
    expect(JSON.parse(answer.body)).toEqual({
      error: 'Only "Expect: 100-continue" is supported.',
      code: 'expectation_failed',
    });
    expect(await connection.end()).toBe('closed');
  });

  it('Expect: 100-continue is honoured', async () => {
    const body = '{"phone_number":""}';
    const connection = await send(
      `POST /api/auth/request-code/ HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    connection.write(body);
    const answer = await connection.answer();
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body).code).toBe('validation_error');
    connection.destroy();
  });

  it('CONNECT is a 405 method_not_allowed, not a dropped connection', async () => {
    const connection = await send('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n');
    const answer = await connection.answer();
    expect(answer.status).toBe(405);
    expect(answer.headers.connection).toBe('close');
    expect(JSON.parse(answer.body)).toEqual({
      error: 'Method CONNECT is not allowed.',
      code: 'method_not_allowed',
    });
    expect(await connection.end()).toBe('closed');
  });

  it('an HTTP/1.1 request without Host is refused by Node itself, closing cleanly', async () => {
    // Node answers this one before any application code runs (an empty 400).
    const connection = await send('GET /healthz HTTP/1.1\r\n\r\n');
    const answer = await connection.answer();
    expect(answer.status).toBe(400);
    expect(answer.headers.connection).toBe('close');
    expect(await connection.end()).toBe('closed');
  });
});
