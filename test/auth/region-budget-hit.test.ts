import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { regionBudgetHit } from '../../src/auth/create-send-limiter.js';
import { FakeClock } from '../helper.js';

describe('regionBudgetHit', () => {
  it('warns with the region and its limit, at most once a minute per region', () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'info' },
      { write: (line: string) => lines.push(JSON.parse(line)) },
    );
    const clock = new FakeClock();
    const hit = regionBudgetHit({ logger, clock });

    hit('KZ', 50);
    hit('KZ', 50);
    hit('RU', 500);
    clock.advance(60);
    hit('KZ', 50);

    expect(lines.map(({ level, region, limit }) => ({ level, region, limit }))).toEqual([
      { level: 40, region: 'KZ', limit: 50 },
      { level: 40, region: 'RU', limit: 500 },
      { level: 40, region: 'KZ', limit: 50 },
    ]);
  });
});
