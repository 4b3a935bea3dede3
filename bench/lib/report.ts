/** The results: the machine, the tables printed, and bench/results/*.json|md. */

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { ServiceReport, StartupReport } from './backends.js';
import { fmt, ROOT } from './common.js';
import type { WorkloadRun } from './measure.js';
import type { Options } from './options.js';
import { CONTENDED_OTHER_CPU } from './sampling.js';
import type { SeedReport } from './seed.js';
import type { TargetCheck } from './targets.js';

export type Machine = {
  cpu: string;
  cores: number;
  memoryGb: number;
  os: string;
  kernel: string;
  node: string;
  postgres: string | null;
  redis: string | null;
  loadAverageAtStart: number[];
  loadAverageAtEnd: number[];
};

export async function describeMachine(options: Options): Promise<Machine> {
  let osName = os.type();
  try {
    osName = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? osName;
  } catch {
    // not Linux-like
  }
  let postgres: string | null = null;
  let redisVersion: string | null = null;
  const client = new pg.Client({ connectionString: options.pgAdminUrl });
  try {
    await client.connect();
    const result = await client.query<{ server_version: string }>('show server_version');
    postgres = result.rows[0]?.server_version ?? null;
  } catch {
    // reported as unavailable
  } finally {
    await client.end().catch(() => {});
  }
  const redis = new Redis(options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    redisVersion = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? null;
  } catch {
    // reported as unavailable
  } finally {
    redis.disconnect();
  }
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    os: osName,
    kernel: os.release(),
    node: process.version,
    postgres,
    redis: redisVersion,
    loadAverageAtStart: os.loadavg().map((v) => Number(v.toFixed(2))),
    loadAverageAtEnd: [],
  };
}

export function gitDescribe(): { commit: string; dirty: boolean } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT })
      .toString()
      .trim();
    const status = execFileSync('git', ['status', '--porcelain', '--', 'src', 'drizzle'], {
      cwd: ROOT,
    }).toString();
    return { commit, dirty: status.trim() !== '' };
  } catch {
    return { commit: 'unknown', dirty: false };
  }
}

export type Results = {
  date: string;
  mode: 'full' | 'quick';
  git: { commit: string; dirty: boolean };
  machine: Machine;
  settings: {
    connections: number;
    durationSeconds: number;
    warmupSeconds: number;
    loadGenerator: string;
    serviceEnv: Record<string, string>;
    /** The node command line of the service on each back-end (its README start script, plus BENCH_NODE_ARGS). */
    serviceNode: Record<string, string>;
  };
  bare: { runs: WorkloadRun[]; rps: number };
  runs: WorkloadRun[];
  services: ServiceReport[];
  startup?: StartupReport;
  seed?: SeedReport;
  targets: TargetCheck[];
  skipped: string[];
};

export const percent = (ratio: number | undefined) =>
  ratio === undefined ? '' : `${(ratio * 100).toFixed(1)}%`;

export function workloadTable(results: Results): string[] {
  const rows = [
    '| workload | backend | req/s | vs bare next to it | vs best bare | p50 ms | p90 ms | p99 ms | max ms | expected status | service CPU | load gen CPU | PostgreSQL CPU | Redis CPU | other CPU | steal | service RSS max |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const run of [...results.bare.runs, ...results.runs]) {
    const rate =
      run.signInsPerSecond !== undefined
        ? `${fmt(run.rps)} (${fmt(run.signInsPerSecond)} sign-ins/s)`
        : fmt(run.rps);
    rows.push(
      `| ${run.workload} | ${run.backend} | ${rate} | ${percent(run.ratioToBare)} | ${percent(run.ratioToBestBare)} | ${run.latencyMs.p50.toFixed(2)} | ${run.latencyMs.p90.toFixed(2)} | ${run.latencyMs.p99.toFixed(2)} | ${run.latencyMs.max.toFixed(1)} | ${(run.okShare * 100).toFixed(1)}% ${run.expectedStatus} | ${run.cpu.service.toFixed(0)}% | ${run.cpu.loadGenerator.toFixed(0)}% | ${run.cpu.postgres.toFixed(0)}% | ${run.cpu.redis.toFixed(0)}% | ${run.cpu.other.toFixed(0)}% | ${(run.cpu.steal * os.cpus().length).toFixed(0)}%${run.contended ? ' ⚠' : ''} | ${run.serviceRssMb ? `${run.serviceRssMb.max.toFixed(0)} MB` : ''} |`,
    );
  }
  return rows;
}

export function toMarkdown(results: Results): string {
  const m = results.machine;
  const lines = [
    `# Benchmark ${results.date} (${results.mode})`,
    '',
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB, ${m.os} (${m.kernel}); Node ${m.node}, PostgreSQL ${m.postgres ?? 'n/a'}, Redis ${m.redis ?? 'n/a'}.`,
    `Load average at start ${m.loadAverageAtStart.join(' ')}, at end ${m.loadAverageAtEnd.join(' ')}.`,
    `Commit ${results.git.commit}${results.git.dirty ? ' with uncommitted changes in src/' : ''}.`,
    `Service: ${Object.entries(results.settings.serviceNode)
      .map(([backend, command]) => `${backend} \`${command}\``)
      .join(', ')}.`,
    `Load: autocannon ${results.settings.loadGenerator}, ${results.settings.connections} keep-alive connections (@N: N connections), ${results.settings.warmupSeconds} s warm-up then ${results.settings.durationSeconds} s measured per workload, in its own process. The service, the load generator, PostgreSQL and Redis share the same cores.`,
    `Ratios: "vs bare next to it" divides by the higher of the bare node:http runs measured just before and just after the workload (the host's speed drifts within minutes); the targets are judged on it. "vs best bare" divides by the highest bare run of the whole run.`,
    `CPU columns: % of one core during the measured window (service process, load generator, all postgres processes, redis-server, everything else in this machine, and steal: time the hypervisor gave to other guests).`,
    '',
    ...workloadTable(results),
    '',
    ...(results.runs.some((r) => r.contended) || results.bare.runs.some((r) => r.contended)
      ? [
          `⚠ Other processes on the machine used more than ${CONTENDED_OTHER_CPU}% of a core during the run: its figures are lower than on a quiet machine.`,
          '',
        ]
      : []),
    '## Targets (issues 6, 17 and 18)',
    '',
    '| target | goal | measured | |',
    '|---|---|---|---|',
    ...results.targets.map(
      (t) => `| ${t.target} | ${t.goal} | ${t.measured} | ${t.pass ? 'met' : '**missed**'} |`,
    ),
    '',
  ];
  if (results.startup) {
    lines.push(
      '## Start-up (embedded, spawn to first 200 from /healthz)',
      '',
      `- fresh DATA_DIR: ${results.startup.freshMs.map((v) => `${fmt(v)} ms`).join(', ')}; RSS when ready ${results.startup.freshRssMb.map((v) => `${fmt(v)} MB`).join(', ')}`,
      `- existing DATA_DIR: ${results.startup.existingMs.map((v) => `${fmt(v)} ms`).join(', ')}; RSS when ready ${results.startup.existingRssMb.map((v) => `${fmt(v)} MB`).join(', ')}`,
      '',
    );
  }
  lines.push('## Service processes', '');
  for (const s of results.services) {
    lines.push(
      `- ${s.instance}: ready in ${fmt(s.startMs)} ms, idle RSS ${s.idleRssMb?.toFixed(0) ?? '?'} MB, peak RSS over the whole run ${s.peakRssMb?.toFixed(0) ?? '?'} MB`,
    );
  }
  lines.push('');
  if (results.seed) {
    const s = results.seed;
    lines.push(
      '## Scale data set',
      '',
      `\`npm run seed:data -- --users ${s.users} --top-referrals ${s.topReferrals}\`: ${fmt(s.totals.users)} users (${fmt(s.totals.referred)} referred), ${fmt(s.totals.apiTokens)} API tokens, in ${(s.wallMs / 1000).toFixed(1)} s (foreign key triggers ${s.foreignKeyChecks}).`,
      '',
      `Steps: ${Object.entries(s.timingsMs)
        .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`)
        .join(', ')}.`,
      '',
    );
  }
  for (const s of results.services) {
    if (!s.cpuProfile) continue;
    lines.push(`## CPU profile of the service (${s.instance})`, '', `\`${s.cpuProfile.file}\``, '');
    for (const slice of s.cpuProfile.slices) {
      lines.push(
        `### ${slice.label}: ${(slice.sampledMs / 1000).toFixed(1)} s sampled, idle ${(slice.idleShare * 100).toFixed(0)}%`,
        '',
        `By package: ${slice.byPackage.map((e) => `${e.name} ${(e.share * 100).toFixed(1)}%`).join(', ')}.`,
        '',
        '| function (self time) | where | ms | share |',
        '|---|---|--:|--:|',
        ...slice.topFunctions.map(
          (f) => `| ${f.name} | ${f.where} | ${fmt(f.selfMs)} | ${(f.share * 100).toFixed(1)}% |`,
        ),
        '',
      );
    }
  }
  if (results.skipped.length > 0) {
    lines.push('## Skipped', '', ...results.skipped.map((s) => `- ${s}`), '');
  }
  return `${lines.join('\n')}\n`;
}

export function printSummary(results: Results): void {
  const out = process.stdout;
  out.write('\n');
  const header = [
    'workload',
    'backend',
    'req/s',
    'vs bare next',
    'vs best bare',
    'p50 ms',
    'p99 ms',
    'ok',
    'RSS MB',
  ];
  const rows = [...results.bare.runs, ...results.runs].map((r) => [
    `${r.workload}${r.contended ? ' *' : ''}`,
    r.backend,
    r.signInsPerSecond !== undefined
      ? `${fmt(r.rps)} (${fmt(r.signInsPerSecond)} sign-ins/s)`
      : fmt(r.rps),
    percent(r.ratioToBare),
    percent(r.ratioToBestBare),
    r.latencyMs.p50.toFixed(2),
    r.latencyMs.p99.toFixed(2),
    `${(r.okShare * 100).toFixed(1)}%`,
    r.serviceRssMb ? r.serviceRssMb.max.toFixed(0) : '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  out.write(`${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const row of rows) out.write(`${line(row)}\n`);
  const contended = [...results.bare.runs, ...results.runs].filter((r) => r.contended);
  if (contended.length > 0) {
    out.write(
      `\n* contended: other processes used more than ${CONTENDED_OTHER_CPU}% of a core during ` +
        `${contended.length} run(s); those figures are lower than on a quiet machine.\n`,
    );
  }
  out.write('\nTargets (issues 6, 17 and 18):\n');
  for (const t of results.targets) {
    out.write(`  ${t.pass ? 'met   ' : 'MISSED'}  ${t.target}: ${t.measured} (goal ${t.goal})\n`);
  }
  for (const s of results.services) {
    if (!s.cpuProfile) continue;
    out.write(`\nCPU profile of the service (${s.instance}): ${s.cpuProfile.file}\n`);
    for (const slice of s.cpuProfile.slices) {
      out.write(
        `\n  ${slice.label} (${(slice.sampledMs / 1000).toFixed(1)} s sampled), by package: ` +
          `${slice.byPackage
            .slice(0, 8)
            .map((e) => `${e.name} ${(e.share * 100).toFixed(1)}%`)
            .join(', ')}\n`,
      );
      for (const f of slice.topFunctions.slice(0, 12)) {
        out.write(`    ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.name}  ${f.where}\n`);
      }
    }
  }
  for (const s of results.skipped) out.write(`skipped: ${s}\n`);
}
