/** What bench/run.ts and bench/paired.ts both start the service with. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Limits opened (issue 6): 0 turns each cap off, and codes may be re-sent at once. */
export const OPEN_LIMITS = {
  OTP_MAX_ATTEMPTS: '100',
  OTP_RESEND_COOLDOWN_SECONDS: '0',
  OTP_MAX_PER_PHONE_PER_HOUR: '0',
  OTP_MAX_PER_IP_PER_HOUR: '0',
  OTP_MAX_FAILED_PER_PHONE_PER_HOUR: '0',
  SMS_MAX_PER_HOUR: '0',
};

/** The node flags in package.json's `start` script (`node [flags] dist/server.js`). */
export function startScriptNodeArgs(): string[] {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: { start: string };
  };
  const words = manifest.scripts.start.trim().split(/\s+/);
  if (words[0] !== 'node' || words.at(-1) !== 'dist/server.js') {
    throw new Error(
      `npm start is "${manifest.scripts.start}": expected node [flags] dist/server.js`,
    );
  }
  return words.slice(1, -1);
}
