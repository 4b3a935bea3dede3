/** The targets (issue 6 and later issues), judged on one run's results. */
import type { ServiceReport, StartupReport } from './backends.js';
import { fmt } from './common.js';
import type { WorkloadRun } from './measure.js';

export const REFERENCE_VERIFY_RPS = 1_900;
export const GOALS = {
  profileRatio: 0.3,
  profileP99Ms: 15,
  verifyRps: 5 * REFERENCE_VERIFY_RPS,
  verifyRatio: 0.25,
  signInsPerSecond: 2_000,
  scaleP99Ms: 20,
  /** Issue 17: with CACHE_SIZE=0, shares of bare node:http next to it (p99 as scaleP99Ms). */
  nocacheRatio: {
    'scale-profile-random-nocache': 0.15,
    'scale-profile-nocache': 0.1,
    'scale-referrals-nocache': 0.1,
    'profile-nocache': 0.04,
  } as Record<string, number>,
  /** Issue 18: the admin search and stats at 1,000,000 users, p99 at 64 connections. */
  adminP99Ms: 20,
  rssMb: 200,
  startupMs: 3_000,
};

export type TargetCheck = { target: string; goal: string; measured: string; pass: boolean };

export function checkTargets(
  runs: WorkloadRun[],
  services: ServiceReport[],
  startup: StartupReport | undefined,
): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const pct = (v: number) => `${(v * 100).toFixed(0)}%`;
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  for (const run of runs) {
    const where = `${run.workload} (${run.backend})`;
    const ratio = run.ratioToBare ?? 0;
    const ofBare =
      run.bareNextTo === undefined
        ? ''
        : ` of ${fmt(run.bareNextTo)} req/s next to it; ${pct(run.ratioToBestBare ?? 0)} of the best bare run`;
    // A run whose answers are mostly not the expected ones measured something else.
    const valid = run.okShare >= 0.99;
    const note =
      (valid ? '' : ` — only ${pct(run.okShare)} answered ${run.expectedStatus}`) +
      (run.contended ? ' (contended)' : '');
    if (run.workload === 'profile') {
      checks.push({
        target: `${where}: throughput vs bare node:http`,
        goal: `≥ ${pct(GOALS.profileRatio)}`,
        measured: `${pct(ratio)} (${fmt(run.rps)} req/s${ofBare})${note}`,
        pass: valid && ratio >= GOALS.profileRatio,
      });
      checks.push({
        target: `${where}: p99 latency`,
        goal: `< ${GOALS.profileP99Ms} ms`,
        measured: `${ms(run.latencyMs.p99)}${note}`,
        pass: valid && run.latencyMs.p99 < GOALS.profileP99Ms,
      });
    } else if (run.workload === 'verify-wrong') {
      checks.push({
        target: `${where}: throughput vs reference (${fmt(REFERENCE_VERIFY_RPS)} req/s)`,
        goal: `≥ ${fmt(GOALS.verifyRps)} req/s (5×)`,
        measured: `${fmt(run.rps)} req/s (${(run.rps / REFERENCE_VERIFY_RPS).toFixed(1)}×)${note}`,
        pass: valid && run.rps >= GOALS.verifyRps,
      });
      checks.push({
        target: `${where}: throughput vs bare node:http`,
        goal: `≥ ${pct(GOALS.verifyRatio)}`,
        measured: `${pct(ratio)} (${fmt(run.rps)} req/s${ofBare})${note}`,
        pass: valid && ratio >= GOALS.verifyRatio,
      });
    } else if (run.workload === 'sign-in') {
      const rate = run.signInsPerSecond ?? 0;
      checks.push({
        target: `${where}: full sign-ins per second`,
        goal: `≥ ${fmt(GOALS.signInsPerSecond)}/s`,
        measured: `${fmt(rate)}/s${note}`,
        pass: valid && rate >= GOALS.signInsPerSecond,
      });
    } else if (run.workload === 'scale-profile' || run.workload === 'scale-referrals') {
      checks.push({
        target: `${where}: p99 latency`,
        goal: `< ${GOALS.scaleP99Ms} ms`,
        measured: `${ms(run.latencyMs.p99)}${note}`,
        pass: valid && run.latencyMs.p99 < GOALS.scaleP99Ms,
      });
    } else if (GOALS.nocacheRatio[run.workload] !== undefined) {
      const goal = GOALS.nocacheRatio[run.workload] ?? 0;
      checks.push({
        target: `${where}: throughput vs bare node:http, CACHE_SIZE=0`,
        goal: `≥ ${pct(goal)}`,
        measured: `${pct(ratio)} (${fmt(run.rps)} req/s${ofBare})${note}`,
        pass: valid && ratio >= goal,
      });
      if (run.workload.startsWith('scale-')) {
        checks.push({
          target: `${where}: p99 latency at ${run.connections} connections, CACHE_SIZE=0`,
          goal: `< ${GOALS.scaleP99Ms} ms`,
          measured: `${ms(run.latencyMs.p99)}${note}`,
          pass: valid && run.latencyMs.p99 < GOALS.scaleP99Ms,
        });
      }
    } else if (run.workload.startsWith('admin-') && !run.workload.includes('@')) {
      checks.push({
        target: `${where}: p99 latency at ${run.connections} connections`,
        goal: `< ${GOALS.adminP99Ms} ms`,
        measured: `${ms(run.latencyMs.p99)}${note}`,
        pass: valid && run.latencyMs.p99 < GOALS.adminP99Ms,
      });
    }
  }
  for (const backend of new Set(services.map((s) => s.backend))) {
    const loaded = runs.filter((r) => r.backend === backend && r.serviceRssMb);
    if (loaded.length === 0) continue;
    const max = Math.max(...loaded.map((r) => r.serviceRssMb?.max ?? 0));
    checks.push({
      target: `service RSS under load (${backend})`,
      goal: `< ${GOALS.rssMb} MB`,
      measured: `${max.toFixed(1)} MB`,
      pass: max < GOALS.rssMb,
    });
  }
  if (startup) {
    for (const [label, values] of [
      ['fresh', startup.freshMs],
      ['existing', startup.existingMs],
    ] as const) {
      const worst = Math.max(...values);
      checks.push({
        target: `embedded start to first answer, ${label} DATA_DIR (worst of ${values.length})`,
        goal: `< ${GOALS.startupMs / 1000} s`,
        measured: `${(worst / 1000).toFixed(2)} s`,
        pass: worst < GOALS.startupMs,
      });
    }
  }
  return checks;
}
