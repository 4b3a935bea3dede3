/** The scale data set, made by scripts/seed-data.ts in a child process. */

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmt, minimalEnv, ROOT } from './common.js';
import type { Options } from './options.js';
import { exited, track } from './processes.js';

export type SeedSummary = {
  users: number;
  topUser: { id: number; inviteCode: string; referralsCount: number; tokens: string[] };
  sampleUsers: { id: number; phoneNumber: string; inviteCode: string; token: string }[];
  staffUser: { id: number; phoneNumber: string; tokens: string[] } | null;
  totals: { users: number; referred: number; apiTokens: number };
  foreignKeyChecks: string;
  timingsMs: Record<string, number>;
};

export type SeedReport = {
  users: number;
  topReferrals: number;
  wallMs: number;
  totals: SeedSummary['totals'];
  foreignKeyChecks: string;
  timingsMs: Record<string, number>;
};

export async function seedScaleData(
  options: Options,
  databaseUrl: string,
  workDir: string,
): Promise<{ summary: SeedSummary; report: SeedReport }> {
  const out = join(workDir, 'seed.json');
  const started = performance.now();
  process.stdout.write(
    `  seeding ${fmt(options.scaleUsers)} users, top referrer with ${fmt(options.scaleReferrals)} referrals…\n`,
  );
  const child = track(
    spawn(
      join(ROOT, 'node_modules', '.bin', 'tsx'),
      [
        join(ROOT, 'scripts', 'seed-data.ts'),
        '--users',
        String(options.scaleUsers),
        '--top-referrals',
        String(options.scaleReferrals),
        '--tokens',
        '100',
        '--sample-users',
        '1000',
        '--staff-tokens',
        '10',
        '--out',
        out,
        '--database-url',
        databaseUrl,
      ],
      { cwd: workDir, env: minimalEnv({}), stdio: ['ignore', 'inherit', 'pipe'] },
    ),
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await exited(child);
  if (child.exitCode !== 0) throw new Error(`seed failed:\n${stderr}`);
  const wallMs = performance.now() - started;
  const summary = JSON.parse(readFileSync(out, 'utf8')) as SeedSummary;
  process.stdout.write(
    `  seeded in ${(wallMs / 1000).toFixed(1)} s (${Object.entries(summary.timingsMs)
      .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`)
      .join(', ')})\n`,
  );
  return {
    summary,
    report: {
      users: options.scaleUsers,
      topReferrals: options.scaleReferrals,
      wallMs,
      totals: summary.totals,
      foreignKeyChecks: summary.foreignKeyChecks,
      timingsMs: summary.timingsMs,
    },
  };
}
