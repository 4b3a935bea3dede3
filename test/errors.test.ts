import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorCodes, errorDefinitions } from '../src/errors.js';

/** `{ code: status }` from the rows `| 400  | \`code\` | ... |` of a README's error table. */
function readmeErrorTable(file: string): Record<string, number> {
  const text = readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');
  const rows: Record<string, number> = {};
  for (const [, status, code] of text.matchAll(/^\|\s*(\d{3})\s*\|\s*`([a-z_]+)`\s*\|/gm))
    rows[code as string] = Number(status);
  return rows;
}

describe('the error registry', () => {
  it.each(['README.md', 'README.ru.md'])('%s lists every code with its status', (file) => {
    const expected = Object.fromEntries(
      errorCodes.map((code) => [code, errorDefinitions[code].status]),
    );
    expect(readmeErrorTable(file)).toEqual(expected);
  });
});
