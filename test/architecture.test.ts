import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** The files of src/ (relative paths) whose text matches `pattern`. */
function filesMatching(pattern: RegExp): string[] {
  return sourceFiles(SRC)
    .filter((path) => pattern.test(readFileSync(path, 'utf8')))
    .map((path) => relative(SRC, path));
}

// Rules of the structure that no test of behaviour would notice being broken
// until a cache serves a stale answer.
describe('structure', () => {
  it('every transaction that changes an account is opened by AccountChanges', () => {
    // A transaction opened elsewhere could change what a cache holds without announcing it.
    expect(filesMatching(/\bdb\.transaction\(/)).toEqual(['accounts/account-changes.ts']);
  });

  it('no code branches on a concrete store class, and no version is threaded through requests', () => {
    expect(filesMatching(/instanceof (MemoryStore|RedisStore)/)).toEqual([]);
    expect(filesMatching(/userVersion/)).toEqual([]);
  });

  it('buildApp constructs no service: deps.ts builds every dependency', () => {
    // A service made in app.ts would be a second place of wiring, out of reach of DepsOverrides.
    const app = readFileSync(join(SRC, 'app.ts'), 'utf8');
    const made = new Set([...app.matchAll(/\bnew ([A-Z]\w*)/g)].map((m) => m[1]));
    expect([...made].sort()).toEqual(['ApiError', 'LogController', 'Map', 'Set']);
  });
});
