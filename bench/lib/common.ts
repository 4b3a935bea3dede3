/** What every part of the harness shares: paths, the one host, small helpers. */
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Traffic goes to this address only. */
export const HOST = '127.0.0.1';

/**
 * `postgres`: PostgreSQL + Redis; `embedded`: the default (PGlite under DATA_DIR,
 * in-process store); `memory`: PGlite in memory (DATABASE_URL=memory://), only
 * when asked for, to tell PGlite's own cost from its file system's.
 */
export type Backend = 'postgres' | 'embedded' | 'memory';

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function fmt(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

export function phoneNumber(n: number): string {
  // +7 999 XXX-XX-XX: valid Russian mobile numbers, one per n below 10^7.
  return `+7999${String(n).padStart(7, '0')}`;
}

export function minimalEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  // A clean environment (and a working directory without a .env file): nothing
  // from the caller's shell changes what is measured.
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: os.tmpdir(), ...extra };
}

export const RESULTS_DIR = join(ROOT, 'bench', 'results');
/** The load generator's entry point, forked once per workload. */
export const LOAD_WORKER = fileURLToPath(new URL('./load-worker.ts', import.meta.url));

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}
