/**
 * Benchmarks of the service (GitHub issues 6, 17 and 18). `npm run bench` for the full run,
 * `npm run bench -- --quick` for a short smoke run; `--help` lists the options.
 *
 * Every process runs apart, so that none shares an event loop with another:
 * - the service: `node dist/server.js`, once on PostgreSQL + Redis (a throwaway
 *   database and one Redis logical database) and once on the embedded default
 *   (PGlite in a temporary DATA_DIR, in-process store);
 * - a bare `node:http` server answering a fixed 200-byte JSON: the baseline,
 *   loaded on its own just before and just after each workload with a ratio
 *   target, so that a ratio compares figures of the same minutes;
 * - the load generator: autocannon, in a child process (lib/load-worker.ts),
 *   one per workload.
 * Traffic goes to 127.0.0.1 only. Everything started is stopped at the end, by
 * pid, and the database and the Redis database used are dropped and flushed.
 *
 * The results are printed as a table and written to bench/results/ as JSON and
 * Markdown (`<date>.json|md` and `latest.json|md`; `-quick` for smoke runs).
 *
 * This file is the run in order; the parts are in lib/: processes.ts (tracking
 * and stopping what is started), bare.ts (the baseline), service.ts (starting
 * the service), load.ts and load-worker.ts (the load generator), sampling.ts
 * (CPU and RSS from /proc), measure.ts (one workload's run), workloads.ts and
 * seed.ts (what is loaded), backends.ts (each back-end's sequence),
 * cpu-profile.ts, targets.ts and report.ts.
 */

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import {
  measureStartup,
  type Outcome,
  runBackend,
  runEmbedded,
  runPostgres,
  type StartupReport,
} from './lib/backends.js';
import { startBare } from './lib/bare.js';
import { RESULTS_DIR, ROOT } from './lib/common.js';
import { type Context, measureBare } from './lib/measure.js';
import { parseOptions } from './lib/options.js';
import { cleanUp, cleanups } from './lib/processes.js';
import {
  describeMachine,
  gitDescribe,
  printSummary,
  type Results,
  toMarkdown,
} from './lib/report.js';
import { serviceNodeArgs } from './lib/service.js';
import { OPEN_LIMITS } from './lib/service-settings.js';
import { checkTargets } from './lib/targets.js';

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const date = new Date();
  const stamp = date.toISOString().replace(/\..*$/, '').replaceAll(':', '-');
  const workDir = mkdtempSync(join(os.tmpdir(), 'bench-'));
  cleanups.push(async () => {
    if (!options.cpuProfile) rmSync(workDir, { recursive: true, force: true });
  });
  const interrupted = () => {
    process.stderr.write('\ninterrupted: stopping everything started\n');
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  if (options.build) {
    process.stdout.write('building (npm run build)…\n');
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
  }
  if (!existsSync(join(ROOT, 'dist', 'server.js'))) {
    throw new Error('dist/server.js is missing: run `npm run build`, or leave out --no-build');
  }
  const machine = await describeMachine(options);
  process.stdout.write(
    `${options.quick ? 'quick' : 'full'} run: ${machine.cpu}, ${machine.cores} cores, ` +
      `load average ${machine.loadAverageAtStart.join(' ')}; ${options.connections} connections, ` +
      `${options.warmupSeconds} s warm-up + ${options.durationSeconds} s per workload\n`,
  );

  const context: Context = { options, runs: [], windows: [] };
  const outcome: Outcome = { services: [], skipped: [] };
  let startup: StartupReport | undefined;
  try {
    context.baseline = { service: await startBare(), runs: [], latest: null };
    // One bare run at the start, so that every run has its best bare figure.
    await measureBare(context);
    if (options.backends.includes('postgres')) await runPostgres(context, workDir, outcome);
    if (options.backends.includes('embedded')) await runEmbedded(context, workDir, outcome);
    if (options.backends.includes('memory')) {
      await runBackend(context, workDir, outcome, {
        backend: 'memory',
        env: { DATABASE_URL: 'memory://' },
      });
    }
    if (options.workloads.includes('startup')) startup = await measureStartup(options, workDir);
  } finally {
    await cleanUp();
  }

  const bareRuns = context.baseline?.runs ?? [];
  const bareRps = Math.max(...bareRuns.map((r) => r.rps));
  for (const run of context.runs) run.ratioToBestBare = run.rps / bareRps;
  machine.loadAverageAtEnd = os.loadavg().map((v) => Number(v.toFixed(2)));
  const autocannonVersion = (
    JSON.parse(readFileSync(join(ROOT, 'node_modules', 'autocannon', 'package.json'), 'utf8')) as {
      version: string;
    }
  ).version;
  const results: Results = {
    date: date.toISOString(),
    mode: options.quick ? 'quick' : 'full',
    git: gitDescribe(),
    machine,
    settings: {
      connections: options.connections,
      durationSeconds: options.durationSeconds,
      warmupSeconds: options.warmupSeconds,
      loadGenerator: autocannonVersion,
      serviceEnv: {
        NODE_ENV: 'development',
        LOG_LEVEL: 'warn',
        SMS_CONSOLE_DELAY_MS: '0',
        ...OPEN_LIMITS,
      },
      serviceNode: Object.fromEntries(
        (['postgres', 'embedded'] as const).map((backend) => [
          backend,
          ['node', ...serviceNodeArgs(backend), 'dist/server.js'].join(' '),
        ]),
      ),
    },
    bare: { runs: bareRuns, rps: bareRps },
    runs: context.runs,
    services: outcome.services,
    ...(startup ? { startup } : {}),
    ...(outcome.seed ? { seed: outcome.seed } : {}),
    targets: checkTargets(context.runs, outcome.services, startup),
    skipped: outcome.skipped,
  };
  printSummary(results);
  if (options.write) {
    mkdirSync(RESULTS_DIR, { recursive: true });
    const suffix = options.quick ? '-quick' : '';
    const json = `${JSON.stringify(results, null, 2)}\n`;
    const markdown = toMarkdown(results);
    for (const name of [`${stamp}${suffix}`, `latest${suffix}`]) {
      writeFileSync(join(RESULTS_DIR, `${name}.json`), json);
      writeFileSync(join(RESULTS_DIR, `${name}.md`), markdown);
    }
    process.stdout.write(
      `\nwritten: bench/results/${stamp}${suffix}.{json,md} and latest${suffix}.{json,md}\n`,
    );
  }
  if (options.cpuProfile) process.stdout.write(`CPU profiles kept in ${workDir}\n`);
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench failed: ${(error as Error).stack ?? error}\n`);
  await cleanUp();
  process.exitCode = 1;
}
