/** What bench/run.ts and bench/paired.ts both start the service with. */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './common.js';

/** Limits opened (issue 6): 0 turns each cap off, and codes may be re-sent at once. */
export const OPEN_LIMITS = {
  OTP_MAX_ATTEMPTS: '100',
  OTP_RESEND_COOLDOWN_SECONDS: '0',
  OTP_MAX_PER_PHONE_PER_HOUR: '0',
  OTP_MAX_PER_IP_PER_HOUR: '0',
  OTP_MAX_VERIFY_PER_IP_PER_HOUR: '0',
  OTP_MAX_FAILED_PER_PHONE_PER_HOUR: '0',
  SMS_MAX_PER_HOUR: '0',
};

/**
 * The npm script the README tells users to run the service with: `start` on
 * the embedded database, `start:postgres` on PostgreSQL (a larger young
 * generation: the process holds no database, so memory allows it).
 */
export function startScriptOf(backend: string): 'start' | 'start:postgres' {
  return backend === 'postgres' ? 'start:postgres' : 'start';
}

/** The node flags of a package.json start script (`node [flags] dist/server.js`). */
export function startScriptNodeArgs(script: 'start' | 'start:postgres'): string[] {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string | undefined>;
  };
  const command = manifest.scripts[script] ?? '';
  const words = command.trim().split(/\s+/);
  if (words[0] !== 'node' || words.at(-1) !== 'dist/server.js') {
    throw new Error(`npm run ${script} is "${command}": expected node [flags] dist/server.js`);
  }
  return words.slice(1, -1);
}
