/** CPU profiles (`--cpu-prof`): self time by package and function, per measured window. */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './common.js';

export type CpuProfile = {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
};

/** Self time of one stretch of the profile: the whole process, or one measured workload. */
export type ProfileSlice = {
  label: string;
  sampledMs: number;
  /** Share of the samples in which the process was idle, waiting for I/O. */
  idleShare: number;
  byPackage: { name: string; selfMs: number; share: number }[];
  topFunctions: { name: string; where: string; selfMs: number; share: number }[];
};

export type ProfileSummary = { file: string; slices: ProfileSlice[] };

/**
 * A measured window, in µs of CLOCK_MONOTONIC: the clock of V8's profile timestamps too.
 * `pid` is the service process that was loaded: a back-end can run two at once (the
 * second with CACHE_SIZE=0), and a window sliced from the other one's profile is all idle.
 */
export type Window = { label: string; pid: number; startUs: number; endUs: number };

export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export function packageOf(url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : '(native)';
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules?.[1]) return modules[1];
  if (url.startsWith('node:')) return 'node core';
  if (url.includes('/dist/')) return 'service (dist/)';
  return url;
}

export function shortUrl(url: string): string {
  return url
    .replace(/^file:\/\//, '')
    .replace(ROOT, '')
    .replace(/^.*node_modules\//, '');
}

export function sliceProfile(
  profile: CpuProfile,
  label: string,
  from: number,
  to: number,
  topCount: number,
): ProfileSlice {
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byFunction = new Map<string, { name: string; where: string; us: number }>();
  const byPackage = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    at += us;
    const frame = frames.get(id);
    if (!frame || at < from || at > to) return;
    totalUs += us;
    const name = frame.functionName || '(anonymous)';
    if (name === '(idle)') idleUs += us;
    const where = frame.url ? `${shortUrl(frame.url)}:${frame.lineNumber + 1}` : '';
    const key = `${name} ${where}`;
    const entry = byFunction.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    byFunction.set(key, entry);
    const pkg = packageOf(frame.url, name);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
  });
  const share = (us: number) => (totalUs > 0 ? us / totalUs : 0);
  return {
    label,
    sampledMs: totalUs / 1000,
    idleShare: share(idleUs),
    byPackage: [...byPackage.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([name, us]) => ({ name, selfMs: us / 1000, share: share(us) })),
    topFunctions: [...byFunction.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, topCount)
      .map((f) => ({ name: f.name, where: f.where, selfMs: f.us / 1000, share: share(f.us) })),
  };
}

/**
 * One service process's profile (the only one in `dir`), for the whole process and for
 * each of its own measured workloads alone.
 */
export function summariseCpuProfile(
  dir: string,
  pid: number,
  windows: Window[],
): ProfileSummary | undefined {
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
  const file = files.sort().at(-1);
  if (file === undefined) return undefined;
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
  return {
    file: join(dir, file),
    slices: [
      sliceProfile(profile, 'whole process', 0, Number.POSITIVE_INFINITY, 20),
      ...windows
        .filter((w) => w.pid === pid)
        .map((w) => sliceProfile(profile, w.label, w.startUs, w.endUs, 20)),
    ],
  };
}
