import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/audit-log.js';
import { regionBudgetHit } from '../../src/auth/create-send-limiter.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { FakeClock } from '../helper.js';

describe('regionBudgetHit', () => {
  it('warns with the region and its limit, at most once a minute per region', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'info' },
      { write: (line: string) => lines.push(JSON.parse(line)) },
    );
    const clock = new FakeClock();
    const store = new MemoryStore(clock);
    const entries: AuditRecord[] = [];
    const audit = { record: async (entry: AuditRecord) => entries.push(entry) > 0 };
    const hit = regionBudgetHit({ logger, clock, store, audit });
    // A second instance on the same store: the hour's entry is written once for both.
    const otherInstance = regionBudgetHit({
      logger: pino({ level: 'silent' }),
      clock,
      store,
      audit,
    });

    await hit('KZ', 50);
    await hit('KZ', 50);
    await otherInstance('KZ', 50);
    await hit('RU', 500);
    clock.advance(60);
    await hit('KZ', 50);

    expect(lines.map(({ level, region, limit }) => ({ level, region, limit }))).toEqual([
      { level: 40, region: 'KZ', limit: 50 },
      { level: 40, region: 'RU', limit: 500 },
      { level: 40, region: 'KZ', limit: 50 },
    ]);
    expect(entries.map(({ details }) => details)).toEqual([
      { region: 'KZ', limit: 50 },
      { region: 'RU', limit: 500 },
    ]);
    clock.advance(3600);
    await otherInstance('KZ', 50);
    expect(entries).toHaveLength(3);
    expect(entries[2]).toEqual({
      type: 'sms_region_budget_hit',
      actor: 'system',
      details: { region: 'KZ', limit: 50 },
    });
    await store.close();
  });

  it('an entry that could not be written is written by a later refusal, on any instance', async () => {
    const clock = new FakeClock();
    const store = new MemoryStore(clock);
    const logger = pino({ level: 'silent' });
    const entries: AuditRecord[] = [];
    let databaseUp = false;
    const audit = {
      record: async (entry: AuditRecord) => databaseUp && entries.push(entry) > 0,
    };
    const hit = regionBudgetHit({ logger, clock, store, audit });
    const otherInstance = regionBudgetHit({ logger, clock, store, audit });

    await hit('KZ', 50);
    expect(entries).toHaveLength(0);
    databaseUp = true;
    await otherInstance('KZ', 50);
    await hit('KZ', 50);
    expect(entries.map(({ details }) => details)).toEqual([{ region: 'KZ', limit: 50 }]);
    await store.close();
  });
});
