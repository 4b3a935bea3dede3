import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect as connectTcp, createServer, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type KeyValueStore, StoreUnavailableError } from '../../src/store/key-value-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { FakeClock, newTestKeyPrefix } from '../helper.js';

const redisUrl = process.env.TEST_REDIS_URL;
const silent = pino({ level: 'silent' });

/** One store under test, and how to let time pass for it. */
type Harness = {
  store: KeyValueStore;
  /**
   * Lets keys set with `ttlSeconds` expire. A fake clock jumps; Redis cannot use
   * one, so it waits (at most ~3 s) until `isGone` says the keys have expired.
   */
  expire(ttlSeconds: number, isGone: () => Promise<boolean>): Promise<void>;
  close(): Promise<void>;
};

type Implementation = {
  name: string;
  /** Redis counts TTLs down in real time, so a read may be a second below what was set. */
  ttlSlackSeconds: number;
  create(): Promise<Harness>;
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Deletes every key under `prefix` (never FLUSH: other tests share the server). */
async function deleteKeys(admin: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await admin.del(...keys);
  } while (cursor !== '0');
}

let admin: Redis | undefined;

beforeAll(async () => {
  if (redisUrl) admin = new Redis(redisUrl);
});

afterAll(async () => {
  await admin?.quit();
});

const memory: Implementation = {
  name: 'MemoryStore',
  ttlSlackSeconds: 0,
  create: async () => {
    const clock = new FakeClock();
    const store = new MemoryStore(clock);
    return {
      store,
      expire: async (ttlSeconds) => clock.advance(ttlSeconds),
      close: () => store.close(),
    };
  },
};

const redis: Implementation = {
  name: 'RedisStore',
  ttlSlackSeconds: 1,
  create: async () => {
    const keyPrefix = newTestKeyPrefix();
    const store = await RedisStore.connect({ url: redisUrl as string, logger: silent, keyPrefix });
    return {
      store,
      expire: async (ttlSeconds, isGone) => {
        const deadline = Date.now() + ttlSeconds * 1000 + 2000;
        await sleep(ttlSeconds * 1000);
        while (!(await isGone())) {
          if (Date.now() > deadline) throw new Error('Redis did not expire the keys in time');
          await sleep(50);
        }
      },
      close: async () => {
        await store.close();
        await deleteKeys(admin as Redis, keyPrefix);
      },
    };
  },
};

const implementations = [memory, ...(redisUrl ? [redis] : [])];

describe.each(implementations)('KeyValueStore contract: $name', (impl) => {
  let h: Harness;
  let store: KeyValueStore;

  beforeEach(async () => {
    h = await impl.create();
    store = h.store;
  });

  afterEach(async () => {
    await h.close();
  });

  /** The TTL read back right after setting `expected` seconds. */
  async function expectTtl(key: string, expected: number): Promise<void> {
    const ttl = await store.ttlSeconds(key);
    expect(ttl).not.toBeNull();
    expect(ttl).toBeLessThanOrEqual(expected);
    expect(ttl).toBeGreaterThanOrEqual(expected - impl.ttlSlackSeconds);
  }

  describe('get / set', () => {
    it('returns null for a key that was never set', async () => {
      expect(await store.get('missing')).toBeNull();
    });

    it('returns the value that was set, with its TTL', async () => {
      await store.set('k', 'v1', 100);

      expect(await store.get('k')).toBe('v1');
      await expectTtl('k', 100);
    });

    it('replaces both the value and the TTL of an existing key', async () => {
      await store.set('k', 'v1', 100);
      await store.set('k', 'v2', 10);

      expect(await store.get('k')).toBe('v2');
      await expectTtl('k', 10);
    });

    it('keeps keys apart', async () => {
      await store.set('a', '1', 100);
      await store.set('b', '2', 100);

      expect(await store.get('a')).toBe('1');
      expect(await store.get('b')).toBe('2');
    });
  });

  describe('getMany', () => {
    it('reads each key in order, null for the missing ones', async () => {
      await store.set('v:{u1}:a', '1', 100);
      await store.increment('v:{u1}:c', 100, 5);

      expect(await store.getMany(['v:{u1}:a', 'v:{u1}:b', 'v:{u1}:c'])).toEqual(['1', null, '5']);
    });

    it('misses expired keys', async () => {
      await store.set('v:{u2}:a', '1', 1);
      await h.expire(1, async () => (await store.get('v:{u2}:a')) === null);

      expect(await store.getMany(['v:{u2}:a'])).toEqual([null]);
    });
  });

  describe('setAndDelete', () => {
    it('sets the value with its TTL and removes the other keys', async () => {
      await store.set('c:{p}', 'old', 100);
      await store.increment('c:{p}:n', 100, 3);

      await store.setAndDelete('c:{p}', 'new', 50, ['c:{p}:n', 'c:{p}:missing']);

      expect(await store.get('c:{p}')).toBe('new');
      await expectTtl('c:{p}', 50);
      expect(await store.get('c:{p}:n')).toBeNull();
      expect(await store.increment('c:{p}:n', 100)).toBe(1);
    });

    it('with nothing to delete, is a set', async () => {
      await store.setAndDelete('c:{q}', 'v', 20, []);

      expect(await store.get('c:{q}')).toBe('v');
      await expectTtl('c:{q}', 20);
    });
  });

  describe('incrementAndGet', () => {
    it('adds 1 to each counter and reads each key, in order', async () => {
      await store.set('c:{p}', 'code', 100);
      await store.increment('c:{p}:b', 100, 4);

      const first = await store.incrementAndGet(
        [
          { key: 'c:{p}:a', ttlSeconds: 30 },
          { key: 'c:{p}:b', ttlSeconds: 30 },
        ],
        ['c:{p}', 'c:{p}:missing', 'c:{p}:b'],
      );

      expect(first).toEqual({ counts: [1, 5], values: ['code', null, '5'] });
      await expectTtl('c:{p}:a', 30);
      // The TTL of an existing counter is kept, as with increment.
      await expectTtl('c:{p}:b', 100);
      const second = await store.incrementAndGet([{ key: 'c:{p}:a', ttlSeconds: 500 }], []);
      expect(second).toEqual({ counts: [2], values: [] });
      await expectTtl('c:{p}:a', 30);
    });

    it('100 concurrent calls each get their own count, and a read and a count are of one instant', async () => {
      await store.setAndDelete('c:{r}', 'v0', 100, ['c:{r}:n']);
      // Guesses race new codes: every guess is counted against the code it read,
      // so the guesses that read one code got the counts 1..k, each once.
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          i % 10 === 9
            ? store.setAndDelete('c:{r}', `v${i}`, 100, ['c:{r}:n']).then(() => null)
            : store.incrementAndGet([{ key: 'c:{r}:n', ttlSeconds: 100 }], ['c:{r}']),
        ),
      );
      const countsByCode = new Map<string, number[]>();
      for (const result of results) {
        if (result === null) continue;
        const code = result.values[0] as string;
        countsByCode.set(code, [...(countsByCode.get(code) ?? []), result.counts[0] as number]);
      }
      expect([...countsByCode.values()].flat()).toHaveLength(90);
      for (const counts of countsByCode.values()) {
        expect([...counts].sort((a, b) => a - b)).toEqual(counts.map((_, i) => i + 1));
      }
    });
  });

  describe('addToLog / removeFromLog', () => {
    const t0 = 1_700_000_000_000;
    const log = { key: 'l:{a}', limit: 3, windowSeconds: 60 };

    it('admits `limit` events in any window, exactly, and says when the next one fits', async () => {
      for (const [i, atMs] of [t0, t0 + 10_000, t0 + 20_000].entries()) {
        // It says how full the log is now, and since when.
        expect(await store.addToLog(log, atMs)).toEqual({
          ok: true,
          id: expect.any(String),
          held: i + 1,
          oldestAtMs: t0,
        });
      }
      await expectTtl(log.key, 60);

      expect(await store.addToLog(log, t0 + 30_000)).toEqual({ ok: false, retryAfterMs: 30_000 });
      expect(await store.addToLog(log, t0 + 59_999)).toEqual({ ok: false, retryAfterMs: 1 });
      // The first event leaves the window exactly one window after it.
      expect((await store.addToLog(log, t0 + 60_000)).ok).toBe(true);
      expect(await store.addToLog(log, t0 + 60_001)).toEqual({ ok: false, retryAfterMs: 9_999 });
      // A refusal is not an event: the next one fits as soon as the second has slid out.
      expect(await store.addToLog(log, t0 + 70_000)).toMatchObject({
        ok: true,
        held: 3,
        oldestAtMs: t0 + 20_000,
      });
      // Other logs are their own.
      expect((await store.addToLog({ ...log, key: 'l:{b}' }, t0 + 70_000)).ok).toBe(true);
    });

    it('with more events held than the limit (lowered since), waits for enough of them to go', async () => {
      for (const atMs of [t0, t0 + 1_000, t0 + 2_000, t0 + 3_000])
        expect((await store.addToLog({ ...log, limit: 4 }, atMs)).ok).toBe(true);

      expect(await store.addToLog({ ...log, limit: 2 }, t0 + 5_000)).toEqual({
        ok: false,
        retryAfterMs: 57_000,
      });
    });

    it('a removed event frees its place; an unknown id removes nothing', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const added = await store.addToLog(log, t0 + i);
        if (added.ok) ids.push(added.id);
      }
      expect(new Set(ids).size).toBe(3);
      await store.removeFromLog(log.key, ids[1] as string);
      await store.removeFromLog(log.key, ids[1] as string);
      await store.removeFromLog(log.key, 'unknown');
      await store.removeFromLog('l:{missing}', 'unknown');

      expect((await store.addToLog(log, t0 + 5)).ok).toBe(true);
      expect((await store.addToLog(log, t0 + 6)).ok).toBe(false);
    });

    it('of 50 concurrent adds at one instant, exactly `limit` get in', async () => {
      const results = await Promise.all(
        Array.from({ length: 50 }, () => store.addToLog({ ...log, limit: 10 }, t0)),
      );

      expect(results.filter((r) => r.ok)).toHaveLength(10);
      expect(new Set(results.flatMap((r) => (r.ok ? [r.id] : []))).size).toBe(10);
    });
  });

  describe('guess', () => {
    const t0 = 1_700_000_000_000;
    const record = 'right.1700000000000.id';
    const failures = { key: 'o:{p}:failed', limit: 10, windowSeconds: 3600 };
    const guess = {
      key: 'o:{p}',
      prefix: 'right.',
      attemptsKey: 'o:{p}:attempts',
      maxAttempts: 10,
      failures,
    };
    const wrong = { ...guess, prefix: 'wrong.' };

    it('counts a wrong guess at the record and in the failures log; a right one takes the record', async () => {
      await store.set(guess.key, record, 100);

      expect(await store.guess(wrong, t0)).toEqual({
        outcome: 'wrong',
        record,
        attempt: 1,
        failureId: expect.any(String),
        failures: { held: 1, oldestAtMs: t0 },
      });
      // The attempts expire with the record they count.
      await expectTtl(guess.attemptsKey, 100);
      await expectTtl(failures.key, 3600);
      // A guess that merely starts alike, or is longer than the record, is wrong too.
      for (const [i, prefix] of ['righ.', 'righx.', 'wight.', `${record}.longer`].entries()) {
        // The log's state after each guess: how many it holds, and the oldest one's time.
        const near = await store.guess({ ...guess, prefix }, t0 + (i + 1) * 1000);
        expect(near, prefix).toMatchObject({
          outcome: 'wrong',
          attempt: i + 2,
          failures: { held: i + 2, oldestAtMs: t0 },
        });
      }
      expect(await store.guess(guess, t0)).toEqual({ outcome: 'taken', record });
      expect(await store.get(guess.key)).toBeNull();
      expect(await store.get(guess.attemptsKey)).toBeNull();
      // Wrong guesses stay in the log, across records; right ones never enter it.
      await store.set(guess.key, record, 100);
      for (let i = 0; i < 5; i++) expect((await store.guess(wrong, t0)).outcome).toBe('wrong');
      expect(await store.guess(wrong, t0)).toEqual({ outcome: 'capped', retryAfterMs: 3_600_000 });
    });

    it('works without a failures log', async () => {
      const plain = { ...guess, failures: undefined };
      await store.set(guess.key, record, 100);

      expect(await store.guess({ ...plain, prefix: 'wrong.' }, t0)).toEqual({
        outcome: 'wrong',
        record,
        attempt: 1,
      });
      expect(await store.guess(plain, t0)).toEqual({ outcome: 'taken', record });
      expect(await store.ttlSeconds(failures.key)).toBeNull();
    });

    it('a missing record is absent, and the guess leaves no key behind', async () => {
      expect(await store.guess(wrong, t0)).toEqual({ outcome: 'absent' });
      expect(await store.guess(guess, t0)).toEqual({ outcome: 'absent' });

      for (const key of [guess.key, guess.attemptsKey, failures.key])
        expect(await store.ttlSeconds(key)).toBeNull();
    });

    it('past maxAttempts the record is exhausted, even for the right guess, and nothing more is counted', async () => {
      const two = { ...guess, maxAttempts: 2 };
      await store.set(guess.key, record, 100);
      expect((await store.guess({ ...two, prefix: 'wrong.' }, t0)).outcome).toBe('wrong');
      expect((await store.guess({ ...two, prefix: 'wrong.' }, t0)).outcome).toBe('wrong');

      expect(await store.guess(two, t0)).toEqual({ outcome: 'exhausted', record });
      expect(await store.guess({ ...two, prefix: 'wrong.' }, t0)).toEqual({
        outcome: 'exhausted',
        record,
      });
      expect(await store.get(guess.key)).toBe(record);
      expect(await store.get(guess.attemptsKey)).toBe('2');
      // Two failures in the log, not four.
      const log = { ...two, failures: { ...failures, limit: 3 } };
      await store.setAndDelete(guess.key, record, 100, [guess.attemptsKey]);
      expect((await store.guess({ ...log, prefix: 'wrong.' }, t0)).outcome).toBe('wrong');
      expect((await store.guess(log, t0)).outcome).toBe('capped');
    });

    it('a full failures log caps every guess, right or wrong, at a record or none, until the window slides', async () => {
      const capped = { ...guess, failures: { ...failures, limit: 2, windowSeconds: 60 } };
      await store.set(guess.key, record, 100);
      expect((await store.guess({ ...capped, prefix: 'wrong.' }, t0)).outcome).toBe('wrong');
      expect((await store.guess({ ...capped, prefix: 'wrong.' }, t0 + 1_000)).outcome).toBe(
        'wrong',
      );

      expect(await store.guess(capped, t0 + 2_000)).toEqual({
        outcome: 'capped',
        retryAfterMs: 58_000,
      });
      expect(await store.guess({ ...capped, key: 'o:{p}:none' }, t0 + 2_000)).toEqual({
        outcome: 'capped',
        retryAfterMs: 58_000,
      });
      // Nothing was read or counted.
      expect(await store.get(guess.key)).toBe(record);
      expect(await store.get(guess.attemptsKey)).toBe('2');
      expect(await store.guess(capped, t0 + 60_000)).toEqual({ outcome: 'taken', record });
    });

    it('giveBackGuess undoes a wrong guess: its failure, and an attempt only at the same record', async () => {
      const one = { ...guess, failures: { ...failures, limit: 1 } };
      await store.set(guess.key, record, 100);
      const first = await store.guess({ ...one, prefix: 'wrong.' }, t0);
      if (first.outcome !== 'wrong') throw new Error(first.outcome);

      await store.giveBackGuess(one, first.record, first.failureId);
      expect(await store.get(guess.attemptsKey)).toBe('0');
      const second = await store.guess({ ...one, prefix: 'wrong.' }, t0);
      expect(second).toMatchObject({ outcome: 'wrong', attempt: 1 });
      if (second.outcome !== 'wrong') throw new Error(second.outcome);

      // A new record since: its attempts are not the ones given back.
      await store.setAndDelete(guess.key, 'right.2.id', 100, [guess.attemptsKey]);
      await store.increment(guess.attemptsKey, 100, 3);
      await store.giveBackGuess(one, second.record, second.failureId);
      expect(await store.get(guess.attemptsKey)).toBe('3');
      expect((await store.guess(one, t0)).outcome).toBe('taken');
      // Giving back at a record gone since creates nothing.
      await store.giveBackGuess(one, second.record, second.failureId);
      expect(await store.get(guess.attemptsKey)).toBeNull();
    });

    it('of 50 concurrent right guesses, exactly one takes the record', async () => {
      await store.set(guess.key, record, 100);
      const results = await Promise.all(Array.from({ length: 50 }, () => store.guess(guess, t0)));

      expect(results.filter((r) => r.outcome === 'taken')).toHaveLength(1);
      // The first to run took it: every other one found it gone.
      expect(results.filter((r) => r.outcome === 'absent')).toHaveLength(49);
    });

    it('of 100 concurrent wrong guesses, each counted one has its own attempt, and no cap is exceeded', async () => {
      await store.set(guess.key, record, 100);
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          store.guess({ ...wrong, maxAttempts: 100, failures: { ...failures, limit: 30 } }, t0 + i),
        ),
      );

      const counted = results.flatMap((r) => (r.outcome === 'wrong' ? [r.attempt] : []));
      expect(counted.sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      expect(results.filter((r) => r.outcome === 'capped')).toHaveLength(70);
    });
  });

  describe('setIfAbsent', () => {
    it('sets a missing key once, then refuses and keeps the first value and TTL', async () => {
      expect(await store.setIfAbsent('k', 'first', 100)).toBe(true);
      expect(await store.setIfAbsent('k', 'second', 500)).toBe(false);

      expect(await store.get('k')).toBe('first');
      await expectTtl('k', 100);
    });

    it('refuses a key created by set', async () => {
      await store.set('k', 'v', 100);

      expect(await store.setIfAbsent('k', 'other', 100)).toBe(false);
      expect(await store.get('k')).toBe('v');
    });
  });

  describe('getAndDelete', () => {
    it('returns the value once, then null', async () => {
      await store.set('k', 'v', 100);

      expect(await store.getAndDelete('k')).toBe('v');
      expect(await store.getAndDelete('k')).toBeNull();
      expect(await store.get('k')).toBeNull();
      expect(await store.ttlSeconds('k')).toBeNull();
    });

    it('returns null for a missing key', async () => {
      expect(await store.getAndDelete('missing')).toBeNull();
    });
  });

  describe('deleteIfEquals', () => {
    it('keeps the key when the value differs', async () => {
      await store.set('k', 'v', 100);

      expect(await store.deleteIfEquals('k', 'other')).toBe(false);
      expect(await store.deleteIfEquals('k', 'V')).toBe(false);
      expect(await store.get('k')).toBe('v');
    });

    it('removes the key when the value is equal, once', async () => {
      await store.set('k', 'v', 100);

      expect(await store.deleteIfEquals('k', 'v')).toBe(true);
      expect(await store.get('k')).toBeNull();
      expect(await store.deleteIfEquals('k', 'v')).toBe(false);
    });

    it('returns false for a missing key', async () => {
      expect(await store.deleteIfEquals('missing', 'v')).toBe(false);
    });
  });

  describe('increment', () => {
    it('starts a new key at 1 by default and adds 1 each time', async () => {
      expect(await store.increment('n', 100)).toBe(1);
      expect(await store.increment('n', 100)).toBe(2);
      expect(await store.increment('n', 100)).toBe(3);
      expect(await store.get('n')).toBe('3');
    });

    it('starts a new key at `by` and sums later amounts', async () => {
      expect(await store.increment('n', 100, 5)).toBe(5);
      expect(await store.increment('n', 100, 3)).toBe(8);
      expect(await store.increment('n', 100)).toBe(9);
      expect(await store.get('n')).toBe('9');
    });

    it('sets the TTL on creation and never extends it', async () => {
      await store.increment('n', 100);
      await expectTtl('n', 100);

      expect(await store.increment('n', 1000)).toBe(2);
      expect(await store.increment('n', 5000, 2)).toBe(4);

      await expectTtl('n', 100);
    });

    it('counts up from a value written by set, keeping its TTL', async () => {
      await store.set('n', '10', 50);

      expect(await store.increment('n', 1000)).toBe(11);
      await expectTtl('n', 50);
    });
  });

  describe('delete', () => {
    it('removes a key', async () => {
      await store.set('k', 'v', 100);
      await store.delete('k');

      expect(await store.get('k')).toBeNull();
      expect(await store.ttlSeconds('k')).toBeNull();
      expect(await store.setIfAbsent('k', 'again', 100)).toBe(true);
    });

    it('accepts a missing key', async () => {
      await expect(store.delete('missing')).resolves.toBeUndefined();
    });
  });

  describe('ttlSeconds', () => {
    it('is null for a missing key', async () => {
      expect(await store.ttlSeconds('missing')).toBeNull();
    });

    it('is the TTL given to setIfAbsent', async () => {
      await store.setIfAbsent('k', 'v', 42);

      await expectTtl('k', 42);
    });
  });

  it('ping resolves while the store is reachable', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
  });

  describe('expiry', () => {
    it('forgets every kind of key after its TTL', async () => {
      await store.set('set', 'v', 1);
      await store.setIfAbsent('absent', 'first', 1);
      await store.increment('counter', 1, 7);
      await store.set('taken', 'v', 1);
      await store.set('guarded', 'v', 1);
      await store.addToLog({ key: 'log', limit: 5, windowSeconds: 1 }, Date.now());
      await store.set('{g}', 'right.1', 1);
      await store.guess(
        { key: '{g}', prefix: 'wrong.', attemptsKey: '{g}:attempts', maxAttempts: 5 },
        Date.now(),
      );
      const keys = ['set', 'absent', 'counter', 'taken', 'guarded', '{g}', '{g}:attempts'];

      await h.expire(1, async () => {
        const values = await Promise.all(keys.map((key) => store.get(key)));
        return values.every((value) => value === null) && (await store.ttlSeconds('log')) === null;
      });

      expect(await store.get('set')).toBeNull();
      for (const key of keys) expect(await store.ttlSeconds(key)).toBeNull();
      expect(await store.setIfAbsent('absent', 'second', 100)).toBe(true);
      expect(await store.get('absent')).toBe('second');
      expect(await store.increment('counter', 100)).toBe(1);
      await expectTtl('counter', 100);
      expect(await store.getAndDelete('taken')).toBeNull();
      expect(await store.deleteIfEquals('guarded', 'v')).toBe(false);
    });
  });

  describe('atomicity under concurrency', () => {
    it('200 concurrent increments return exactly 1..200, each once', async () => {
      const results = await Promise.all(
        Array.from({ length: 200 }, () => store.increment('n', 100)),
      );

      expect([...results].sort((a, b) => a - b)).toEqual(
        Array.from({ length: 200 }, (_, i) => i + 1),
      );
      expect(await store.get('n')).toBe('200');
      await expectTtl('n', 100);
    });

    it('50 concurrent setIfAbsent: exactly one wins, and its value is kept', async () => {
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => store.setIfAbsent('k', `v${i}`, 100)),
      );

      expect(results.filter((won) => won)).toHaveLength(1);
      expect(await store.get('k')).toBe(`v${results.indexOf(true)}`);
    });

    it('50 concurrent getAndDelete: exactly one gets the value', async () => {
      await store.set('k', 'v', 100);

      const results = await Promise.all(Array.from({ length: 50 }, () => store.getAndDelete('k')));

      expect(results.filter((value) => value !== null)).toEqual(['v']);
      expect(await store.get('k')).toBeNull();
    });

    it('50 concurrent deleteIfEquals: exactly one removes the key', async () => {
      await store.set('k', 'v', 100);

      const results = await Promise.all(
        Array.from({ length: 50 }, () => store.deleteIfEquals('k', 'v')),
      );

      expect(results.filter((removed) => removed)).toHaveLength(1);
      expect(await store.get('k')).toBeNull();
    });
  });
});

describe('MemoryStore expiry follows the injected clock', () => {
  let clock: FakeClock;
  let store: MemoryStore;

  beforeEach(() => {
    clock = new FakeClock();
    store = new MemoryStore(clock);
  });

  afterEach(async () => {
    await store.close();
  });

  it('keeps a key until the last millisecond of its TTL', async () => {
    await store.set('k', 'v', 10);

    clock.advance(9.999);
    expect(await store.get('k')).toBe('v');
    expect(await store.ttlSeconds('k')).toBe(1);

    clock.advance(0.001);
    expect(await store.get('k')).toBeNull();
    expect(await store.ttlSeconds('k')).toBeNull();
  });

  it('counts the TTL down with the clock', async () => {
    await store.set('k', 'v', 100);

    clock.advance(30);
    expect(await store.ttlSeconds('k')).toBe(70);
  });

  it('lets an increment window run out from its creation, then starts a new one', async () => {
    expect(await store.increment('n', 60)).toBe(1);
    clock.advance(40);
    expect(await store.increment('n', 60)).toBe(2);
    expect(await store.ttlSeconds('n')).toBe(20);

    clock.advance(20);
    expect(await store.get('n')).toBeNull();
    expect(await store.increment('n', 60)).toBe(1);
    expect(await store.ttlSeconds('n')).toBe(60);
  });

  it('setIfAbsent succeeds again once the key has expired', async () => {
    expect(await store.setIfAbsent('k', 'first', 5)).toBe(true);
    clock.advance(4);
    expect(await store.setIfAbsent('k', 'second', 5)).toBe(false);

    clock.advance(1);
    expect(await store.setIfAbsent('k', 'third', 5)).toBe(true);
    expect(await store.get('k')).toBe('third');
  });
});

describe.skipIf(!redisUrl)('RedisStore connection handling', () => {
  const opened: { store: RedisStore; keyPrefix: string }[] = [];

  async function connect(keyPrefix = newTestKeyPrefix()): Promise<RedisStore> {
    const store = await RedisStore.connect({ url: redisUrl as string, logger: silent, keyPrefix });
    opened.push({ store, keyPrefix });
    return store;
  }

  afterEach(async () => {
    for (const { store, keyPrefix } of opened.splice(0)) {
      await store.close();
      await deleteKeys(admin as Redis, keyPrefix);
    }
  });

  /** Runs an operation, timing it and capturing its error instead of throwing. */
  async function attempt<T>(
    operation: () => Promise<T>,
  ): Promise<{ ms: number; value?: T; error?: unknown }> {
    const started = Date.now();
    try {
      const value = await operation();
      return { ms: Date.now() - started, value };
    } catch (error) {
      return { ms: Date.now() - started, error };
    }
  }

  it('rejects quickly with StoreUnavailableError when nothing listens', async () => {
    const outcome = await attempt(() =>
      RedisStore.connect({ url: 'redis://127.0.0.1:1', logger: silent }),
    );

    expect(outcome.error).toBeInstanceOf(StoreUnavailableError);
    expect((outcome.error as Error).message).toMatch(/^Redis is unreachable: /);
    expect(outcome.ms).toBeLessThan(4000);
  });

  it('prefixes its keys, so stores with different prefixes do not see each other', async () => {
    const prefixA = newTestKeyPrefix();
    const a = await connect(prefixA);
    const b = await connect();
    await a.set('k', 'from-a', 100);

    expect(await b.get('k')).toBeNull();
    expect(await (admin as Redis).get(`${prefixA}k`)).toBe('from-a');
  });

  it('runs its scripts again after the server has forgotten them (a restart, SCRIPT FLUSH)', async () => {
    const store = await connect();
    const everyScript = async (round: number) => {
      expect(await store.increment('n', 100)).toBe(round);
      await store.setAndDelete('c:{p}', `v${round}`, 100, ['c:{p}:n']);
      expect(await store.incrementAndGet([{ key: 'c:{p}:n', ttlSeconds: 100 }], ['c:{p}'])).toEqual(
        { counts: [1], values: [`v${round}`] },
      );
      const log = { key: 'c:{p}:log', limit: 5, windowSeconds: 60 };
      const added = await store.addToLog(log, Date.now());
      expect(added.ok).toBe(true);
      await store.set('c:{p}:t', `hash${round}.rest`, 100);
      const guess = {
        key: 'c:{p}:t',
        prefix: `hash${round}.`,
        attemptsKey: 'c:{p}:a',
        maxAttempts: 5,
        failures: log,
      };
      const wrong = await store.guess({ ...guess, prefix: 'other.' }, Date.now());
      expect(wrong.outcome).toBe('wrong');
      if (wrong.outcome === 'wrong')
        await store.giveBackGuess(guess, wrong.record, wrong.failureId);
      expect(await store.guess(guess, Date.now())).toEqual({
        outcome: 'taken',
        record: `hash${round}.rest`,
      });
      expect(await store.deleteIfEquals('c:{p}', `v${round}`)).toBe(true);
    };
    await everyScript(1);

    expect(await (admin as Redis).script('FLUSH')).toBe('OK');

    await everyScript(2);
  });

  it('sends the next turn’s commands while earlier ones still await their replies', async () => {
    // A proxy that sees what the client sends and can hold Redis's replies back.
    const upstream = new URL(redisUrl as string);
    const sent: Buffer[] = [];
    const held: Buffer[] = [];
    let hold = false;
    let toClient: Socket | undefined;
    const proxy = createServer((client) => {
      toClient = client;
      const server = connectTcp(Number(upstream.port || 6379), upstream.hostname);
      client.on('data', (chunk) => {
        sent.push(chunk);
        server.write(chunk);
      });
      server.on('data', (chunk) => (hold ? held.push(chunk) : client.write(chunk)));
      for (const socket of [client, server]) socket.on('error', () => {});
      client.on('close', () => server.destroy());
    });
    proxy.listen(0, '127.0.0.1');
    await once(proxy, 'listening');
    const { port } = proxy.address() as { port: number };
    const through = new URL(redisUrl as string);
    through.host = `127.0.0.1:${port}`;
    const keyPrefix = newTestKeyPrefix();
    const store = await RedisStore.connect({ url: through.toString(), logger: silent, keyPrefix });
    opened.push({ store, keyPrefix });
    try {
      hold = true;
      const first = store.get('first');
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      const second = store.get('second');

      // The second command reaches Redis although the first is still unanswered.
      const deadline = Date.now() + 3000;
      while (!Buffer.concat(sent).includes(`${keyPrefix}second`) && Date.now() < deadline)
        await sleep(20);
      expect(Buffer.concat(sent).toString()).toContain(`${keyPrefix}second`);

      hold = false;
      for (const chunk of held.splice(0)) toClient?.write(chunk);
      expect(await Promise.all([first, second])).toEqual([null, null]);
    } finally {
      await store.close();
      opened.pop();
      proxy.close();
      toClient?.destroy();
    }
  });

  it('survives its connection being killed: fails fast or succeeds, then recovers', async () => {
    const keyPrefix = newTestKeyPrefix();
    const store = await connect(keyPrefix);
    const marker = `marker-${randomBytes(4).toString('hex')}`;

    // RedisStore does not expose its connection: find it by watching the server
    // run a command on a key only this test uses, and kill exactly that client.
    const monitor = await (admin as Redis).monitor();
    const source = new Promise<string>((resolve) => {
      monitor.on('monitor', (_time: string, args: string[], from: string) => {
        if (args[1] === `${keyPrefix}${marker}`) resolve(from);
      });
    });
    await store.get(marker);
    const address = await source;
    monitor.disconnect();
    expect(await (admin as Redis).call('CLIENT', 'KILL', 'ADDR', address)).toBe(1);

    const next = await attempt(() => store.set('after-kill', 'v', 100));
    expect(next.ms).toBeLessThan(5000);
    if (next.error !== undefined) expect(next.error).toBeInstanceOf(StoreUnavailableError);

    const deadline = Date.now() + 10_000;
    for (;;) {
      const again = await attempt(() => store.ping());
      expect(again.ms).toBeLessThan(5000);
      if (again.error === undefined) break;
      expect(again.error).toBeInstanceOf(StoreUnavailableError);
      expect(Date.now()).toBeLessThan(deadline);
      await sleep(100);
    }
    await store.set('recovered', 'yes', 100);
    expect(await store.get('recovered')).toBe('yes');
    expect(await store.increment('counter', 100)).toBe(1);
  });
});
