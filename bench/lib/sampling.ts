/** /proc sampling: the service's memory, who used the CPU, and waiting for an idle machine. */

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { sleep } from './common.js';

export const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

export function rssMb(pid: number): number | null {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

export function peakRssMb(pid: number): number | null {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

export type CpuSnapshot = {
  atMs: number;
  machine: { busy: number; steal: number; total: number };
  procs: ProcTimes;
};
export type ProcTimes = Map<number, { comm: string; ticks: number }>;

export function readProcTimes(): ProcTimes {
  const times: ProcTimes = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' ');
      // Fields 14 and 15 of /proc/<pid>/stat (utime, stime), counted from the state field (3).
      times.set(Number(entry), { comm, ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // the process ended meanwhile
    }
  }
  return times;
}

export function readMachineTimes(): { busy: number; steal: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  // user nice system idle iowait irq softirq steal guest guest_nice; guests are inside user.
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = ticks.reduce((sum, v) => sum + v, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  const steal = ticks[7] ?? 0;
  return { busy: total - idle - steal, steal, total };
}

export function cpuSnapshot(): CpuSnapshot {
  return { atMs: performance.now(), machine: readMachineTimes(), procs: readProcTimes() };
}

/** CPU used between two snapshots, in % of one core, by role; machine busy in % of all cores. */
export type CpuUse = {
  service: number;
  loadGenerator: number;
  postgres: number;
  redis: number;
  other: number;
  machineBusy: number;
  /** % of all cores the hypervisor gave to other guests: invisible load from outside this VM. */
  steal: number;
};

export function cpuUse(
  before: CpuSnapshot,
  after: CpuSnapshot,
  servicePid: number,
  loadPid: number,
) {
  const seconds = (after.atMs - before.atMs) / 1000;
  const use = emptyCpu();
  for (const [pid, now] of after.procs) {
    const ticks = now.ticks - (before.procs.get(pid)?.ticks ?? now.ticks);
    const pct = (ticks / CLOCK_TICKS / seconds) * 100;
    if (pid === servicePid) use.service += pct;
    else if (pid === loadPid) use.loadGenerator += pct;
    else if (now.comm === 'postgres') use.postgres += pct;
    else if (now.comm.startsWith('redis')) use.redis += pct;
    else use.other += pct;
  }
  const total = after.machine.total - before.machine.total;
  use.machineBusy = total > 0 ? ((after.machine.busy - before.machine.busy) / total) * 100 : 0;
  use.steal = total > 0 ? ((after.machine.steal - before.machine.steal) / total) * 100 : 0;
  return use;
}

/**
 * Waits, up to `maxSeconds`, until the machine is nearly idle before a workload
 * starts (nothing of ours runs between workloads): on a shared machine this
 * keeps other people's jobs out of the figures as far as possible.
 */
export async function waitForQuiet(maxSeconds: number): Promise<void> {
  const deadline = performance.now() + maxSeconds * 1000;
  let announced = false;
  for (;;) {
    const before = readMachineTimes();
    await sleep(1000);
    const after = readMachineTimes();
    const total = after.total - before.total;
    const busyCores = total > 0 ? ((after.busy - before.busy) / total) * os.cpus().length : 0;
    if (busyCores * 100 < QUIET_CPU) return;
    if (performance.now() > deadline) {
      if (announced) process.stdout.write('still busy, going on; ');
      return;
    }
    if (!announced) {
      announced = true;
      process.stdout.write(
        `(machine busy: ${(busyCores * 100).toFixed(0)}% of a core used by others; waiting) `,
      );
    }
  }
}

// % of one core in use by others below which the machine counts as quiet.
export const QUIET_CPU = 20;
// % of one core used by processes outside the benchmark above which a run is marked contended.
export const CONTENDED_OTHER_CPU = 25;

export function emptyCpu(): CpuUse {
  return {
    service: 0,
    loadGenerator: 0,
    postgres: 0,
    redis: 0,
    other: 0,
    machineBusy: 0,
    steal: 0,
  };
}

/** CPU time (user + system) a process has used so far, in µs. */
export function processCpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / CLOCK_TICKS;
}
