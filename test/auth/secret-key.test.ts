import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveSecretKey, SECRET_KEY_FILE } from '../../src/auth/secret-key.js';
import { loadConfig } from '../../src/config.js';

const DEVELOPMENT_KEY = loadConfig({}).secretKey;

describe('the HMAC key of one-time codes without SECRET_KEY', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const dataDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'secret-key-'));
    dirs.push(dir);
    return join(dir, 'data');
  };

  it('embedded: a random key made once per DATA_DIR, kept with the data, readable only by its owner', () => {
    const dir = dataDir();
    const first = resolveSecretKey(loadConfig({ DATA_DIR: dir }));
    expect(first.secretKey).not.toBe(DEVELOPMENT_KEY);
    expect(first.secretKey).toMatch(/^[0-9a-f]{64}$/);
    expect(first.usesDevelopmentSecret).toBe(false);
    const file = join(dir, SECRET_KEY_FILE);
    expect(readFileSync(file, 'utf8')).toBe(first.secretKey);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // A restart reads the same key, so codes requested before it still verify.
    expect(resolveSecretKey(loadConfig({ DATA_DIR: dir })).secretKey).toBe(first.secretKey);
    // Another data directory gets another key.
    expect(resolveSecretKey(loadConfig({ DATA_DIR: dataDir() })).secretKey).not.toBe(
      first.secretKey,
    );
  });

  it('memory://: a random key per process', () => {
    const a = resolveSecretKey(loadConfig({ DATABASE_URL: 'memory://' }));
    const b = resolveSecretKey(loadConfig({ DATABASE_URL: 'memory://' }));
    expect(a.secretKey).not.toBe(DEVELOPMENT_KEY);
    expect(a.secretKey).not.toBe(b.secretKey);
  });

  it('PostgreSQL keeps the development key (instances must share one) and says so', () => {
    const config = resolveSecretKey(loadConfig({ DATABASE_URL: 'postgres://localhost/x' }));
    expect(config.secretKey).toBe(DEVELOPMENT_KEY);
    expect(config.usesDevelopmentSecret).toBe(true);
  });

  it('SECRET_KEY, when set, is used as it is', () => {
    const key = 'k'.repeat(40);
    expect(resolveSecretKey(loadConfig({ SECRET_KEY: key, DATA_DIR: dataDir() })).secretKey).toBe(
      key,
    );
  });
});
