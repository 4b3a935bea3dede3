import { describe, expect, it } from 'vitest';
import { cryptoRandom, randomString } from '../../src/lib/random.js';

describe('cryptoRandom', () => {
  it('never hands out the same bytes twice, across refills of its block', () => {
    // 2,000 draws of 9 bytes span several 4 KiB blocks.
    const draws = Array.from({ length: 2_000 }, () => cryptoRandom.bytes(9));
    expect(draws.every((b) => b.length === 9)).toBe(true);
    expect(new Set(draws.map((b) => b.toString('hex'))).size).toBe(draws.length);
  });

  it('gives each caller its own buffer', () => {
    const first = cryptoRandom.bytes(20);
    const copy = Buffer.from(first);
    const second = cryptoRandom.bytes(20);
    second.fill(0);
    expect(first).toEqual(copy);
  });

  it('serves large draws and odd sizes', () => {
    expect(cryptoRandom.bytes(5_000)).toHaveLength(5_000);
    expect(cryptoRandom.bytes(0)).toHaveLength(0);
    expect(cryptoRandom.bytes(4_095)).toHaveLength(4_095);
    expect(cryptoRandom.bytes(256)).toHaveLength(256);
  });

  it('draws integers in range, every value reachable', () => {
    const seen = new Set(Array.from({ length: 2_000 }, () => cryptoRandom.int(10)));
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(randomString(cryptoRandom, 'AB', 32)).toMatch(/^[AB]{32}$/);
  });
});
