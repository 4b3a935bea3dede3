/** The bare baseline: a plain node:http server answering a fixed 200-byte JSON. */

import { spawn } from 'node:child_process';
import { HOST, minimalEnv, sleep } from './common.js';
import { freePort, track } from './processes.js';
import type { Service } from './service.js';

export const BARE_BODY = JSON.stringify({
  id: 1,
  phone_number: '+79991234567',
  invite_code: 'A1B2C3',
  activated_invite_code: null,
  referrals: [{ phone_number: '+79997654321', activated_at: '2026-01-15T12:00:00.000Z' }],
  referrals_count: 1,
  padding: 'x'.repeat(20),
});

// The baseline: what Node.js itself can serve on this machine, no framework at all.
export const BARE_SERVER = `
const http = require('node:http');
const body = Buffer.from(process.env.BARE_BODY);
http.createServer((request, response) => {
  request.resume();
  response.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length });
  response.end(body);
}).listen(Number(process.env.PORT), '${HOST}');`;

export async function startBare(): Promise<Service> {
  const port = await freePort();
  const baseUrl = `http://${HOST}:${port}`;
  const started = performance.now();
  const child = track(
    spawn(process.execPath, ['-e', BARE_SERVER], {
      env: minimalEnv({ PORT: String(port), BARE_BODY }),
      stdio: 'ignore',
    }),
  );
  const deadline = performance.now() + 10_000;
  for (;;) {
    try {
      const response = await fetch(baseUrl);
      await response.arrayBuffer();
      break;
    } catch {
      if (performance.now() > deadline || child.exitCode !== null) throw new Error('bare server');
      await sleep(10);
    }
  }
  return {
    backend: 'bare',
    child,
    pid: child.pid ?? 0,
    baseUrl,
    logFile: '',
    startMs: performance.now() - started,
  };
}
