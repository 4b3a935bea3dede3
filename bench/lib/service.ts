/** The service under test: `node dist/server.js` as its back-end's start script runs it. */

import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { type Backend, HOST, minimalEnv, ROOT } from './common.js';
import { freePort, stopProcess, tail, track, waitForHealthy } from './processes.js';
import { OPEN_LIMITS, startScriptNodeArgs, startScriptOf } from './service-settings.js';

export type Service = {
  backend: Backend | 'bare';
  child: ChildProcess;
  pid: number;
  baseUrl: string;
  logFile: string;
  startMs: number;
};

export type ServiceSettings = {
  backend: Backend;
  env: Record<string, string>;
  workDir: string;
  cpuProfileDir?: string;
  /** The checkout whose `dist/server.js` runs (bench:paired's other build); default this one. */
  root?: string;
  /** Pins the service to these cores with `taskset -c` (bench:paired). */
  cpus?: string;
};

/**
 * The service runs as the README's start script for its back-end runs it
 * (`npm start`, or `npm run start:postgres`), with the same node flags, then
 * BENCH_NODE_ARGS (extra flags, to compare settings such as V8 heap sizes).
 */
export function serviceNodeArgs(backend: Backend): string[] {
  return [
    ...startScriptNodeArgs(startScriptOf(backend)),
    ...(process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
  ];
}

export async function startService(settings: ServiceSettings): Promise<Service> {
  const port = await freePort();
  const baseUrl = `http://${HOST}:${port}`;
  const logFile = join(settings.workDir, `service-${settings.backend}-${port}.log`);
  const log = openSync(logFile, 'a');
  const nodeArgs = [
    ...serviceNodeArgs(settings.backend),
    ...(settings.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${settings.cpuProfileDir}`] : []),
  ];
  const command = [process.execPath, ...nodeArgs, join(settings.root ?? ROOT, 'dist', 'server.js')];
  // taskset execs the command: the child's pid is the service's.
  if (settings.cpus !== undefined) command.unshift('taskset', '-c', settings.cpus);
  const started = performance.now();
  const child = track(
    spawn(command[0] as string, command.slice(1), {
      cwd: settings.workDir,
      env: minimalEnv({
        NODE_ENV: 'development',
        HOST,
        PORT: String(port),
        LOG_LEVEL: 'warn',
        SMS_CONSOLE_DELAY_MS: '0',
        ...OPEN_LIMITS,
        ...settings.env,
      }),
      stdio: ['ignore', log, log],
    }),
  );
  closeSync(log);
  try {
    await waitForHealthy(baseUrl, child, 120_000);
  } catch (error) {
    await stopProcess(child);
    throw new Error(
      `${settings.backend} service did not start: ${(error as Error).message}\n${tail(logFile)}`,
    );
  }
  return {
    backend: settings.backend,
    child,
    pid: child.pid ?? 0,
    baseUrl,
    logFile,
    startMs: performance.now() - started,
  };
}
