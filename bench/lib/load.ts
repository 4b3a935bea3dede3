/**
 * The load generator: autocannon, driven in a child process of its own
 * (`load-worker.ts`), one per workload. The parent sends a `LoadJob` and gets a
 * `LoadResult`.
 */

import { createRequire } from 'node:module';
import { HOST, phoneNumber } from './common.js';

export type RequestSpec = {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
};

export type LoadJob = {
  baseUrl: string;
  connections: number;
  durationSeconds: number;
  warmupSeconds: number;
  /**
   * Requests the connections share out, each cycling through its own share
   * (no two connections send the same request while there are enough). Not
   * every request to every connection: autocannon builds each connection's
   * requests as it opens it, and 64 connections of 1,000 requests stalled the
   * load generator at the start of every run, with the first requests in
   * flight.
   */
  requests?: RequestSpec[];
  /** Full sign-in: request-code for a new number, then verify-code with its dev_code. */
  signIn?: { firstNumber: number };
};

export type LatencySummary = { mean: number; p50: number; p90: number; p99: number; max: number };

export type LoadResult = {
  requests: number;
  durationSeconds: number;
  rps: number;
  latencyMs: LatencySummary;
  statusCodes: Record<string, number>;
  errors: number;
  timeouts: number;
  perSecond: number[];
  signIns?: number;
};

export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'measuring' }
  | { type: 'result'; result: LoadResult }
  | { type: 'error'; message: string };

// autocannon ships no types; this is the part of its API used here.
export type AcContext = Record<string, unknown>;
export type AcRequest = {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  setupRequest?: (request: AcRequest, context: AcContext) => AcRequest | undefined;
  onResponse?: (status: number, body: string, context: AcContext) => void;
};
export type AcClient = { setRequests(requests: AcRequest[]): void };
export type AcResult = {
  duration: number;
  errors: number;
  timeouts: number;
  statusCodeStats: Record<string, { count: number }>;
};
export type AcInstance = PromiseLike<AcResult> & {
  on(
    event: 'response',
    listener: (client: AcClient, status: number, bytes: number, ms: number) => void,
  ): void;
};
export type Autocannon = (options: {
  url: string;
  connections: number;
  duration: number;
  timeout: number;
  requests: AcRequest[];
  setupClient?: (client: AcClient) => void;
}) => AcInstance;

export function summariseLatency(samples: number[]): LatencySummary {
  if (samples.length === 0) return { mean: 0, p50: 0, p90: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const mean = sorted.reduce((sum, v) => sum + v, 0) / sorted.length;
  return { mean, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1] ?? 0 };
}

export async function runLoadWorker(): Promise<void> {
  const send = (message: WorkerMessage) => process.send?.(message);
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
  const job = await new Promise<LoadJob>((resolve) => {
    process.once('message', (message) => resolve(message as LoadJob));
    send({ type: 'ready' });
  });
  if (new URL(job.baseUrl).hostname !== HOST) throw new Error('load goes to 127.0.0.1 only');

  let nextNumber = job.signIn?.firstNumber ?? 0;
  let signIns = 0;
  const json = { 'content-type': 'application/json' };
  const requests: AcRequest[] = job.signIn
    ? [
        {
          method: 'POST',
          path: '/api/auth/request-code/',
          headers: json,
          setupRequest: (request, context) => {
            context.phone = phoneNumber(nextNumber++);
            return { ...request, body: JSON.stringify({ phone_number: context.phone }) };
          },
          onResponse: (status, body, context) => {
            if (status === 200) context.code = (JSON.parse(body) as { dev_code?: string }).dev_code;
          },
        },
        {
          method: 'POST',
          path: '/api/auth/verify-code/',
          headers: json,
          // No code (request-code failed): start the sequence again with a new number.
          setupRequest: (request, context) =>
            typeof context.code === 'string'
              ? {
                  ...request,
                  body: JSON.stringify({ phone_number: context.phone, code: context.code }),
                }
              : undefined,
          onResponse: (status) => {
            if (status === 200) signIns++;
          },
        },
      ]
    : (job.requests ?? []).map((r) => ({ ...r }));
  if (requests.length === 0) throw new Error('a load job needs requests or signIn');

  // Each connection's own list, built once for both the warm-up and the measured run.
  const perClient =
    job.signIn || requests.length < 2
      ? undefined
      : Array.from({ length: job.connections }, (_, i) => {
          const share = requests.filter((_, j) => j % job.connections === i);
          return share.length > 0 ? share : [requests[i % requests.length] as AcRequest];
        });

  const run = async (seconds: number) => {
    let clientIndex = 0;
    const setupClient = (client: AcClient) => {
      const i = clientIndex++;
      if (perClient) client.setRequests(perClient[i % perClient.length] ?? requests);
    };
    const samples: number[] = [];
    // Responses per second of the run: a stall shows as a second with few or none.
    const perSecond: number[] = [];
    const startedMs = performance.now();
    const instance = autocannon({
      url: job.baseUrl,
      connections: job.connections,
      duration: seconds,
      timeout: 10,
      // autocannon builds every request given here for every connection before
      // setupClient runs: with thousands of requests that alone stalls the start.
      requests: perClient ? requests.slice(0, 1) : requests,
      setupClient,
    });
    instance.on('response', (_client, _status, _bytes, ms) => {
      samples.push(ms);
      const second = Math.floor((performance.now() - startedMs) / 1000);
      perSecond[second] = (perSecond[second] ?? 0) + 1;
    });
    const result = await instance;
    return { result, samples, perSecond: Array.from(perSecond, (n) => n ?? 0) };
  };

  if (job.warmupSeconds > 0) await run(job.warmupSeconds);
  signIns = 0;
  send({ type: 'measuring' });
  const { result, samples, perSecond } = await run(job.durationSeconds);
  const statusCodes: Record<string, number> = {};
  let total = 0;
  for (const [code, { count }] of Object.entries(result.statusCodeStats)) {
    statusCodes[code] = Number(count);
    total += Number(count);
  }
  const message: WorkerMessage = {
    type: 'result',
    result: {
      requests: total,
      durationSeconds: result.duration,
      rps: total / result.duration,
      latencyMs: summariseLatency(samples),
      statusCodes,
      errors: result.errors,
      timeouts: result.timeouts,
      perSecond,
      ...(job.signIn ? { signIns } : {}),
    },
  };
  process.send?.(message, () => process.exit(0));
}
