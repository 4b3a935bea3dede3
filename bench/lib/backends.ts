/** The back-ends: start the service on each, run the workloads chosen, stop and drop. */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { type Backend, fmt } from './common.js';
import { type ProfileSummary, summariseCpuProfile } from './cpu-profile.js';
import type { Context } from './measure.js';
import type { Options } from './options.js';
import { cleanups, stopProcess } from './processes.js';
import { peakRssMb, rssMb, waitForQuiet } from './sampling.js';
import { type SeedReport, seedScaleData } from './seed.js';
import { type Service, startService } from './service.js';
import {
  adminWorkloads,
  healthzWorkload,
  profileWorkload,
  scaleWorkloads,
  signInWorkload,
  uncachedProfileWorkload,
  verifyWorkload,
} from './workloads.js';

export type ServiceReport = {
  backend: Backend;
  /** Which instance: the back-end, with `CACHE_SIZE=0` for the uncached second one. */
  instance: string;
  startMs: number;
  idleRssMb: number | null;
  peakRssMb: number | null;
  cpuProfile?: ProfileSummary;
};

export type Outcome = {
  services: ServiceReport[];
  seed?: SeedReport;
  skipped: string[];
};

export async function runPostgres(
  context: Context,
  workDir: string,
  outcome: Outcome,
): Promise<void> {
  const { options } = context;
  const admin = new pg.Client({ connectionString: options.pgAdminUrl });
  const redis = new Redis(options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await admin.connect();
    await redis.connect();
  } catch (error) {
    outcome.skipped.push(`postgres: PostgreSQL or Redis unreachable (${(error as Error).message})`);
    await admin.end().catch(() => {});
    redis.disconnect();
    return;
  }
  const dbName = `bench_${randomBytes(6).toString('hex')}`;
  await admin.query(`create database ${dbName}`);
  await redis.flushdb();
  let dropped = false;
  const dropAll = async () => {
    if (dropped) return;
    dropped = true;
    await redis.flushdb().catch(() => {});
    redis.disconnect();
    await admin.query(`drop database if exists ${dbName} with (force)`).catch(() => {});
    await admin.end();
  };
  cleanups.push(dropAll);
  const databaseUrl = new URL(options.pgAdminUrl);
  databaseUrl.pathname = `/${dbName}`;

  try {
    await runBackend(context, workDir, outcome, {
      backend: 'postgres',
      env: { DATABASE_URL: databaseUrl.toString(), REDIS_URL: options.redisUrl },
      afterCommon: async (service) => {
        const scale = options.workloads.includes('scale');
        const admin = options.workloads.includes('admin');
        if (!scale && !admin) return;
        const seed = await seedScaleData(options, databaseUrl.toString(), workDir);
        outcome.seed = seed.report;
        if (scale) await scaleWorkloads(context, service, seed.summary);
        if (admin) await adminWorkloads(context, service, seed.summary);
        if (!scale) return;
        // The same reads with the per-instance caches off: what every read
        // costs in PostgreSQL (a first read, or CACHE_SIZE=0).
        const uncached = await startReported(context, workDir, outcome, {
          backend: 'postgres',
          env: {
            DATABASE_URL: databaseUrl.toString(),
            REDIS_URL: options.redisUrl,
            CACHE_SIZE: '0',
          },
        });
        try {
          await scaleWorkloads(context, uncached.service, seed.summary, '-nocache');
        } finally {
          await stopReported(context, uncached);
        }
      },
    });
  } finally {
    await dropAll();
  }
}

export async function runEmbedded(
  context: Context,
  workDir: string,
  outcome: Outcome,
): Promise<void> {
  // `npm start` creates the database once and finds it afterwards: the load runs
  // on a DATA_DIR made by an earlier start, as it does on every start but the first.
  const dataDir = mkdtempSync(join(workDir, 'pglite-'));
  const first = await startService({ backend: 'embedded', workDir, env: { DATA_DIR: dataDir } });
  await stopProcess(first.child);
  await runBackend(context, workDir, outcome, { backend: 'embedded', env: { DATA_DIR: dataDir } });
  // PGlite allows one process per DATA_DIR, so the uncached instance starts
  // after the first has stopped, on the data the profile workload made.
  if (!context.options.workloads.includes('profile')) return;
  const uncached = await startReported(context, workDir, outcome, {
    backend: 'embedded',
    env: { DATA_DIR: dataDir, CACHE_SIZE: '0' },
  });
  try {
    await uncachedProfileWorkload(context, uncached.service);
  } finally {
    await stopReported(context, uncached);
  }
}

/** Starts the service on one backend, runs the workloads chosen, and stops it. */
export async function runBackend(
  context: Context,
  workDir: string,
  outcome: Outcome,
  settings: {
    backend: Backend;
    env: Record<string, string>;
    afterCommon?: (service: Service) => Promise<void>;
  },
): Promise<void> {
  const { options } = context;
  const started = await startReported(context, workDir, outcome, settings);
  const { service } = started;
  try {
    if (options.workloads.includes('healthz')) await healthzWorkload(context, service);
    if (options.workloads.includes('profile')) await profileWorkload(context, service);
    if (options.workloads.includes('verify')) await verifyWorkload(context, service);
    if (options.workloads.includes('signin')) await signInWorkload(context, service);
    await settings.afterCommon?.(service);
  } finally {
    await stopReported(context, started);
  }
}

type Reported = { service: Service; report: ServiceReport; profileDir?: string };

/**
 * Starts one service instance with its report (and, with --cpu-prof, its own
 * profile directory: one profile per process, sliced by that process's windows).
 */
async function startReported(
  context: Context,
  workDir: string,
  outcome: Outcome,
  settings: { backend: Backend; env: Record<string, string> },
): Promise<Reported> {
  const uncached = settings.env.CACHE_SIZE === '0';
  const instance = `${settings.backend}${uncached ? ', CACHE_SIZE=0' : ''}`;
  const profileDir = context.options.cpuProfile
    ? join(workDir, `cpu-${settings.backend}${uncached ? '-nocache' : ''}`)
    : undefined;
  const service = await startService({
    backend: settings.backend,
    workDir,
    env: settings.env,
    ...(profileDir ? { cpuProfileDir: profileDir } : {}),
  });
  const report: ServiceReport = {
    backend: settings.backend,
    instance,
    startMs: service.startMs,
    idleRssMb: rssMb(service.pid),
    peakRssMb: null,
  };
  outcome.services.push(report);
  return { service, report, ...(profileDir ? { profileDir } : {}) };
}

async function stopReported(context: Context, { service, report, profileDir }: Reported) {
  report.peakRssMb = peakRssMb(service.pid);
  await stopProcess(service.child);
  if (profileDir) {
    const summary = summariseCpuProfile(profileDir, service.pid, context.windows);
    if (summary) report.cpuProfile = summary;
  }
}

export type StartupReport = {
  freshMs: number[];
  existingMs: number[];
  /** RSS as soon as the first answer came. */
  freshRssMb: number[];
  existingRssMb: number[];
};

/** Embedded `npm start` to the first 200 from /healthz, on a new and on an existing DATA_DIR. */
export async function measureStartup(options: Options, workDir: string): Promise<StartupReport> {
  const report: StartupReport = { freshMs: [], existingMs: [], freshRssMb: [], existingRssMb: [] };
  for (let i = 0; i < options.startupRepeats; i++) {
    const dataDir = mkdtempSync(join(workDir, 'startup-'));
    for (const [times, rss] of [
      [report.freshMs, report.freshRssMb],
      [report.existingMs, report.existingRssMb],
    ]) {
      await waitForQuiet(Math.min(options.quietWaitSeconds, 30));
      const service = await startService({
        backend: 'embedded',
        workDir,
        env: { DATA_DIR: dataDir },
      });
      times?.push(service.startMs);
      rss?.push(rssMb(service.pid) ?? 0);
      await stopProcess(service.child);
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1] ?? 0;
  process.stdout.write(
    `  startup (embedded)                 fresh DATA_DIR ${fmt(median(report.freshMs))} ms ` +
      `(RSS ${fmt(median(report.freshRssMb))} MB), existing ${fmt(median(report.existingMs))} ms ` +
      `(RSS ${fmt(median(report.existingRssMb))} MB), median of ${options.startupRepeats}\n`,
  );
  return report;
}
