/** The command line of `npm run bench`: its options and their defaults. */

import { parseArgs } from 'node:util';
import type { Backend } from './common.js';

export const WORKLOADS = [
  'healthz',
  'profile',
  'verify',
  'signin',
  'scale',
  'admin',
  'startup',
] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

export type Options = {
  quick: boolean;
  connections: number;
  durationSeconds: number;
  warmupSeconds: number;
  backends: Backend[];
  workloads: WorkloadName[];
  scaleUsers: number;
  scaleReferrals: number;
  startupRepeats: number;
  build: boolean;
  cpuProfile: boolean;
  write: boolean;
  quietWaitSeconds: number;
  pgAdminUrl: string;
  redisUrl: string;
};

export const HELP = `usage: npm run bench -- [options]

  --quick               short smoke run: 3 s per workload, 50k users for the scale workloads
  --duration S          seconds measured per workload (default 10, quick 3)
  --warmup S            seconds of unmeasured load before each (default 2, quick 1)
  --connections N       concurrent keep-alive connections (default 64)
  --backends LIST       postgres,embedded,memory (default postgres,embedded)
  --only LIST           healthz,profile,verify,signin,scale,admin,startup (default all;
                        the bare baseline always runs; scale and admin seed the data set)
  --users N             users seeded for the scale workloads (default 1000000, quick 50000)
  --referrals N         referrals of the top referrer (default 100000, quick 5000)
  --cpu-prof            run the service under --cpu-prof and summarise where the time goes
                        (best with --only and one backend)
  --quiet-wait S        before each workload, wait up to S seconds for the machine to be
                        idle (default 120, quick 10; 0: do not wait)
  --no-build            do not run \`npm run build\` first
  --no-write            print only; write nothing to bench/results/

Environment: BENCH_PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres) is used
to create and drop a throwaway database; BENCH_REDIS_URL (default
redis://127.0.0.1:6379/13) names the Redis logical database, flushed before and after.`;

export function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      backends: { type: 'string' },
      only: { type: 'string' },
      users: { type: 'string' },
      referrals: { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      'no-build': { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      'quiet-wait': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    process.exit(0);
  }
  const quick = values.quick;
  const num = (text: string | undefined, fallback: number, name: string) => {
    if (text === undefined) return fallback;
    const value = Number(text.replaceAll('_', ''));
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a number > 0`);
    return value;
  };
  const list = <T extends string>(text: string | undefined, all: readonly T[], name: string) => {
    if (text === undefined) return [...all];
    const items = text.split(',').map((s) => s.trim()) as T[];
    for (const item of items) {
      if (!all.includes(item)) throw new Error(`--${name}: unknown "${item}"`);
    }
    return items;
  };
  return {
    quick,
    connections: num(values.connections, 64, 'connections'),
    durationSeconds: num(values.duration, quick ? 3 : 10, 'duration'),
    warmupSeconds: values.warmup === '0' ? 0 : num(values.warmup, quick ? 1 : 2, 'warmup'),
    backends:
      values.backends === undefined
        ? ['postgres', 'embedded']
        : list(values.backends, ['postgres', 'embedded', 'memory'] as const, 'backends'),
    workloads: list(values.only, WORKLOADS, 'only'),
    scaleUsers: num(values.users, quick ? 50_000 : 1_000_000, 'users'),
    scaleReferrals: num(values.referrals, quick ? 5_000 : 100_000, 'referrals'),
    startupRepeats: quick ? 1 : 3,
    build: !values['no-build'],
    cpuProfile: values['cpu-prof'],
    write: !values['no-write'],
    quietWaitSeconds:
      values['quiet-wait'] === '0' ? 0 : num(values['quiet-wait'], quick ? 10 : 120, 'quiet-wait'),
    pgAdminUrl: process.env.BENCH_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/13',
  };
}
