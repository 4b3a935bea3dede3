import type { Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  type Dependency,
  describeCause,
  redactUrl,
  StartupDeadline,
  StartupError,
  secretsOf,
  waitUntilReachable,
} from '../../src/lib/wait-until-reachable.js';

const postgres: Dependency = {
  variable: 'DATABASE_URL',
  description: 'PostgreSQL at postgres://app:***@db:5432/app',
  secrets: ['pa55word'],
};

/** Time that passes only by sleeping, and a logger that keeps what it is given. */
function fakeWorld(timeoutSeconds: number) {
  let nowMs = 1_000_000;
  const sleeps: number[] = [];
  const logged: { level: string; fields: Record<string, unknown>; msg: string }[] = [];
  const log = (level: string) => (fields: Record<string, unknown>, msg: string) => {
    logged.push({ level, fields, msg });
  };
  const logger = { warn: log('warn'), info: log('info') } as unknown as Logger;
  return {
    sleeps,
    logged,
    options: {
      deadline: new StartupDeadline(timeoutSeconds),
      logger,
      nowMs: () => nowMs,
      sleep: async (ms: number) => {
        sleeps.push(ms);
        nowMs += ms;
      },
    },
  };
}

const refused = () => Promise.reject(new Error('connect ECONNREFUSED 10.0.0.5:5432'));

describe('waitUntilReachable', () => {
  it('retries with back-off from 0.5 s doubling to 5 s, logs each failed try, and answers the result', async () => {
    const world = fakeWorld(60);
    let calls = 0;
    const result = await waitUntilReachable(
      postgres,
      async () => {
        calls += 1;
        if (calls <= 6) return refused();
        return 'connected';
      },
      world.options,
    );

    expect(result).toBe('connected');
    expect(world.sleeps).toEqual([500, 1000, 2000, 4000, 5000, 5000]);
    expect(world.logged[0]).toEqual({
      level: 'warn',
      fields: {
        variable: 'DATABASE_URL',
        try: 1,
        retryInMs: 500,
        cause: 'connect ECONNREFUSED 10.0.0.5:5432',
      },
      msg: 'PostgreSQL at postgres://app:***@db:5432/app (DATABASE_URL) is not reachable yet: connect ECONNREFUSED 10.0.0.5:5432; retrying in 0.5 s',
    });
    expect(world.logged.map((line) => line.level)).toEqual([...Array(6).fill('warn'), 'info']);
    expect(world.logged.at(-1)).toEqual({
      level: 'info',
      fields: { variable: 'DATABASE_URL', tries: 7 },
      msg: 'PostgreSQL at postgres://app:***@db:5432/app (DATABASE_URL) is reachable',
    });
  });

  it('gives up at the deadline with one line naming the variable, the tries and the cause', async () => {
    const world = fakeWorld(3);

    const error = await waitUntilReachable(postgres, refused, world.options).catch((e) => e);

    expect(error).toBeInstanceOf(StartupError);
    expect(error.message).toBe(
      'DATABASE_URL: PostgreSQL at postgres://app:***@db:5432/app is not reachable within STARTUP_TIMEOUT_SECONDS=3 (4 tries): connect ECONNREFUSED 10.0.0.5:5432',
    );
    // The last wait is cut to the deadline.
    expect(world.sleeps).toEqual([500, 1000, 1500]);
  });

  it('with STARTUP_TIMEOUT_SECONDS=0 tries once', async () => {
    const world = fakeWorld(0);
    await expect(waitUntilReachable(postgres, refused, world.options)).rejects.toThrow(
      'DATABASE_URL: PostgreSQL at postgres://app:***@db:5432/app is not reachable within STARTUP_TIMEOUT_SECONDS=0 (1 try): connect ECONNREFUSED 10.0.0.5:5432',
    );
    expect(world.sleeps).toEqual([]);
  });

  it('one deadline serves several dependencies: the second gets what the first left', async () => {
    const world = fakeWorld(2);
    let calls = 0;
    await waitUntilReachable(
      postgres,
      async () => {
        calls += 1;
        if (calls <= 2) return refused();
      },
      world.options,
    );
    const redis = {
      variable: 'REDIS_URL',
      description: 'Redis at redis://cache:6379',
      secrets: [],
    };
    await expect(waitUntilReachable(redis, refused, world.options)).rejects.toThrow(
      'REDIS_URL: Redis at redis://cache:6379 is not reachable within STARTUP_TIMEOUT_SECONDS=2 (2 tries): connect ECONNREFUSED 10.0.0.5:5432',
    );
    expect(world.sleeps).toEqual([500, 1000, 500]);
  });
});

describe('start-up messages never show a password', () => {
  it('describeCause: one line, every address of an AggregateError, secrets masked', () => {
    const aggregate = new AggregateError([
      new Error('connect ECONNREFUSED ::1:5432'),
      new Error('connect ECONNREFUSED 127.0.0.1:5432'),
      new Error('connect ECONNREFUSED 127.0.0.1:5432'),
    ]);
    expect(describeCause(aggregate)).toBe(
      'connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432',
    );
    expect(describeCause(new Error('bad password "pa55word"\nfor user app'), ['pa55word'])).toBe(
      'bad password "***" for user app',
    );
  });

  it('redactUrl keeps scheme, user, host and path; secretsOf finds the passwords to mask', () => {
    const url = 'postgres://app:p%40ss@db.internal:5432/app?sslmode=require&password=q';
    expect(redactUrl(url)).toBe('postgres://app:***@db.internal:5432/app');
    expect(secretsOf(url)).toEqual(['p%40ss', 'p@ss', 'q']);
    expect(redactUrl('redis://:s3cret@cache:6379/4')).toBe('redis://:***@cache:6379/4');
    expect(redactUrl('redis://cache:6379')).toBe('redis://cache:6379');
    expect(secretsOf('redis://cache:6379')).toEqual([]);
  });
});
