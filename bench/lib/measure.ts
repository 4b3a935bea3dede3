/**
 * Running one workload: the load worker against a service, with CPU and RSS
 * sampled over the measured window, and the bare runs next to it for ratios.
 */

import { fork } from 'node:child_process';
import os from 'node:os';
import { BARE_BODY } from './bare.js';
import { type Backend, fmt, LOAD_WORKER } from './common.js';
import { monotonicUs, type Window } from './cpu-profile.js';
import type { LatencySummary, LoadJob, LoadResult, WorkerMessage } from './load.js';
import type { Options } from './options.js';
import { exited, track } from './processes.js';
import {
  CONTENDED_OTHER_CPU,
  type CpuSnapshot,
  type CpuUse,
  cpuSnapshot,
  cpuUse,
  emptyCpu,
  rssMb,
  waitForQuiet,
} from './sampling.js';
import type { Service } from './service.js';

export type WorkloadRun = {
  workload: string;
  backend: Backend | 'bare';
  description: string;
  expectedStatus: number;
  connections: number;
  requests: number;
  durationSeconds: number;
  rps: number;
  signInsPerSecond?: number;
  /**
   * Workloads with a ratio target: the higher of the two bare runs measured
   * just before and just after this one (req/s), and the ratio to it.
   */
  bareNextTo?: number;
  ratioToBare?: number;
  /** The ratio to the highest bare run of the whole run, for comparison. */
  ratioToBestBare?: number;
  latencyMs: LatencySummary;
  statusCodes: Record<string, number>;
  okShare: number;
  errors: number;
  timeouts: number;
  /** Responses in each second of the measured run. */
  perSecond: number[];
  cpu: CpuUse;
  /** Other processes used more than a quarter of a core: the figures are lower than they could be. */
  contended: boolean;
  serviceRssMb: { max: number; mean: number } | null;
};

export type Context = {
  options: Options;
  runs: WorkloadRun[];
  windows: Window[];
  baseline?: Baseline;
};

/**
 * The bare node:http server, kept running through the whole run and loaded on
 * its own next to each workload with a ratio target. The host's speed drifts by
 * up to a third within minutes (other guests), so a ratio divides by the bare
 * runs of the same minutes, and of those by the higher one.
 */
export type Baseline = {
  service: Service;
  runs: WorkloadRun[];
  /** The latest bare run: it stands for the next workload's "before" while recent. */
  latest: { run: WorkloadRun; endedMs: number } | null;
};

/** A bare run this recent counts as measured right before the next workload. */
export const BARE_REUSE_MS = 20_000;

export async function measureBare(context: Context): Promise<WorkloadRun> {
  const baseline = context.baseline as Baseline;
  const sink: Context = { options: context.options, runs: baseline.runs, windows: [] };
  const run = await runLoad(sink, baseline.service, {
    workload: 'bare node:http',
    description: `fixed ${Buffer.byteLength(BARE_BODY)}-byte JSON from a plain node:http server`,
    expectedStatus: 200,
    job: { requests: [{ method: 'GET', path: '/' }] },
  });
  baseline.latest = { run, endedMs: performance.now() };
  return run;
}

export async function bareBefore(context: Context): Promise<WorkloadRun> {
  const latest = context.baseline?.latest;
  if (latest && performance.now() - latest.endedMs < BARE_REUSE_MS) return latest.run;
  return measureBare(context);
}

export async function runLoad(
  context: Context,
  service: Service,
  spec: {
    workload: string;
    description: string;
    expectedStatus: number;
    job: Omit<LoadJob, 'baseUrl' | 'connections' | 'durationSeconds' | 'warmupSeconds'>;
    /** Instead of --connections. */
    connections?: number;
    /** Measure the bare server right before and after, for the ratio (see Baseline). */
    paired?: boolean;
  },
): Promise<WorkloadRun> {
  const { options } = context;
  const paired = spec.paired === true && context.baseline !== undefined;
  const bare = paired ? await bareBefore(context) : null;
  const label = `${spec.workload} (${service.backend})`;
  await waitForQuiet(options.quietWaitSeconds);
  process.stdout.write(`  ${label.padEnd(34)} `);
  const worker = track(
    fork(LOAD_WORKER, [], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  const job: LoadJob = {
    baseUrl: service.baseUrl,
    connections: spec.connections ?? options.connections,
    durationSeconds: options.durationSeconds,
    warmupSeconds: options.warmupSeconds,
    ...spec.job,
  };
  const rss: number[] = [];
  let sampler: NodeJS.Timeout | undefined;
  let before: CpuSnapshot | undefined;
  let startUs = 0;
  const result = await new Promise<LoadResult>((resolve, reject) => {
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'ready') worker.send(job);
      else if (message.type === 'measuring') {
        startUs = monotonicUs();
        before = cpuSnapshot();
        sampler = setInterval(() => {
          const mb = rssMb(service.pid);
          if (mb !== null) rss.push(mb);
        }, 200);
      } else if (message.type === 'result') resolve(message.result);
      else reject(new Error(message.message));
    });
    worker.once('exit', (code) => reject(new Error(`load worker exited with code ${code}`)));
  });
  clearInterval(sampler);
  const after = cpuSnapshot();
  context.windows.push({
    label: spec.workload,
    pid: service.pid,
    startUs,
    endUs: monotonicUs(),
  });
  await exited(worker);
  const ok = result.statusCodes[String(spec.expectedStatus)] ?? 0;
  const cpu = before ? cpuUse(before, after, service.pid, worker.pid ?? 0) : emptyCpu();
  const run: WorkloadRun = {
    workload: spec.workload,
    backend: service.backend,
    description: spec.description,
    expectedStatus: spec.expectedStatus,
    connections: job.connections,
    requests: result.requests,
    durationSeconds: result.durationSeconds,
    rps: result.rps,
    ...(result.signIns !== undefined
      ? { signInsPerSecond: result.signIns / result.durationSeconds }
      : {}),
    latencyMs: result.latencyMs,
    statusCodes: result.statusCodes,
    okShare: result.requests > 0 ? ok / result.requests : 0,
    errors: result.errors,
    timeouts: result.timeouts,
    perSecond: result.perSecond,
    cpu,
    contended: cpu.other + cpu.steal * os.cpus().length > CONTENDED_OTHER_CPU,
    serviceRssMb:
      rss.length > 0
        ? { max: Math.max(...rss), mean: rss.reduce((sum, v) => sum + v, 0) / rss.length }
        : null,
  };
  context.runs.push(run);
  const rate =
    run.signInsPerSecond !== undefined
      ? `${fmt(run.signInsPerSecond)} sign-ins/s (${fmt(run.rps)} req/s)`
      : `${fmt(run.rps)} req/s`;
  process.stdout.write(
    `${rate}, p50 ${run.latencyMs.p50.toFixed(1)} ms, p99 ${run.latencyMs.p99.toFixed(1)} ms` +
      `${run.okShare < 0.99 ? `, only ${(run.okShare * 100).toFixed(1)}% answered ${run.expectedStatus}: ${JSON.stringify(run.statusCodes)}` : ''}` +
      `${run.contended ? ` [contended: others used ${(run.cpu.other + run.cpu.steal * os.cpus().length).toFixed(0)}% of a core]` : ''}` +
      `${stallNote(run.perSecond)}\n`,
  );
  if (bare) {
    const after = await measureBare(context);
    run.bareNextTo = Math.max(bare.rps, after.rps);
    run.ratioToBare = run.rps / run.bareNextTo;
  }
  return run;
}

/** Names the slowest second when it served under a quarter of the median one. */
export function stallNote(perSecond: number[]): string {
  const full = perSecond.slice(0, -1); // the last second is cut short by the end of the run
  if (full.length < 3) return '';
  const sorted = [...full].sort((a, b) => a - b);
  const median = sorted[sorted.length >> 1] ?? 0;
  const slowest = sorted[0] ?? 0;
  return slowest < median / 4
    ? ` [stall: second ${full.indexOf(slowest) + 1} served ${fmt(slowest)}, median ${fmt(median)}]`
    : '';
}
