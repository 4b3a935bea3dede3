import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';

/** Where the embedded service keeps the key it made for itself. */
export const SECRET_KEY_FILE = 'secret-key';

/**
 * The key of the one-time codes' HMAC when SECRET_KEY is not set (allowed
 * outside production only). A key everybody knows lets anyone who reads the
 * store reverse a stored 4-digit code's hash in milliseconds, so the service
 * makes its own where it can keep one:
 *
 * - embedded (`DATA_DIR`): a random key in `DATA_DIR/secret-key` (mode 0600),
 *   made at the first start and kept with the data;
 * - `memory://`: a random key for the life of the process, like its data;
 * - PostgreSQL: the development key, with a warning. Several instances must
 *   share one key (a code requested through one verifies through another),
 *   and they have no place of their own to agree on it; set SECRET_KEY.
 */
export function resolveSecretKey(config: Config): Config {
  if (!config.usesDevelopmentSecret) return config;
  if (config.DATABASE_URL === undefined) {
    return { ...config, secretKey: dataDirKey(config.DATA_DIR), usesDevelopmentSecret: false };
  }
  if (config.DATABASE_URL.startsWith('memory:')) {
    return { ...config, secretKey: randomBytes(32).toString('hex'), usesDevelopmentSecret: false };
  }
  return config;
}

function dataDirKey(dataDir: string): string {
  const file = join(dataDir, SECRET_KEY_FILE);
  mkdirSync(dataDir, { recursive: true });
  try {
    // `wx`: of two starts racing here one writes, the other reads what it wrote.
    writeFileSync(file, randomBytes(32).toString('hex'), { flag: 'wx', mode: 0o600 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const key = readFileSync(file, 'utf8').trim();
  if (key.length < 32) throw new Error(`${file} holds no usable key: delete it to make a new one`);
  return key;
}
