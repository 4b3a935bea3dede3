import { createHash, randomBytes } from 'node:crypto';
import { Cluster, Redis, ReplyError } from 'ioredis';
import type { Logger } from 'pino';
import {
  type Counter,
  type Guess,
  type GuessOutcome,
  type KeyValueStore,
  type LogAdded,
  type LogLimit,
  StoreUnavailableError,
} from './key-value-store.js';

// Scripts run on one node of a Redis Cluster: these touch one key each, the
// multi-key ones below need keys that share a hash tag.
type Script = { lua: string; sha: string };
const script = (lua: string): Script => ({
  lua,
  sha: createHash('sha1').update(lua).digest('hex'),
});

const INCREMENT = script(`
local value = redis.call('INCRBY', KEYS[1], ARGV[2])
if redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return value`);
const SET_AND_DELETE = script(`
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
return 1`);
// KEYS: the counters, then the keys to read. ARGV: the number of counters, their TTLs.
const INCREMENT_AND_GET = script(`
local counters = tonumber(ARGV[1])
local result = {}
for i = 1, counters do
  result[i] = redis.call('INCR', KEYS[i])
  if redis.call('TTL', KEYS[i]) == -1 then redis.call('EXPIRE', KEYS[i], ARGV[i + 1]) end
end
for i = counters + 1, #KEYS do result[i] = redis.call('GET', KEYS[i]) end
return result`);
// A sliding log is a sorted set of event ids scored by their time (ms).
// LOG_WAIT drops the events that have slid out of the window ending at \`now\`
// and sets \`wait\` to the ms until one more fits, or nil when one fits now.
const LOG_WAIT = (key: string, now: string, window: string, limit: string) => `
redis.call('ZREMRANGEBYSCORE', ${key}, '-inf', ${now} - ${window})
local held = redis.call('ZCARD', ${key})
local wait = nil
if held >= ${limit} then
  local freeing = redis.call('ZRANGE', ${key}, held - ${limit}, held - ${limit}, 'WITHSCORES')
  wait = tonumber(freeing[2]) + ${window} - ${now}
end`;
const LOG_ADD = (key: string, now: string, window: string, id: string) => `
redis.call('ZADD', ${key}, ${now}, ${id})
redis.call('PEXPIRE', ${key}, ${window})`;
// KEYS[1]: the log. ARGV: now (ms), window (ms), limit, the new event's id.
// Returns {ms to wait} when full, else {0, events held, the oldest one's time}.
const ADD_TO_LOG = script(`
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
${LOG_WAIT('KEYS[1]', 'now', 'window', 'limit')}
if wait then return {wait} end
${LOG_ADD('KEYS[1]', 'now', 'window', 'ARGV[4]')}
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, held + 1, oldest[2]}`);
// KEYS: the record, its attempts, and the failures log if any. ARGV: prefix,
// max attempts, now (ms), and for a log: window (ms), limit, the failure's id.
const GUESS = script(`
local now = tonumber(ARGV[3])
local log = KEYS[3]
if log then
  local window, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
  ${LOG_WAIT('log', 'now', 'window', 'limit')}
  if wait then return {'capped', wait} end
end
local record = redis.call('GET', KEYS[1])
if not record then return {'absent'} end
local attempt = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
if attempt > tonumber(ARGV[2]) then return {'exhausted', record} end
local prefix = ARGV[1]
if #record >= #prefix then
  -- In constant time: every byte is compared, whatever the first difference.
  local byte, bor, bxor, diff = string.byte, bit.bor, bit.bxor, 0
  for i = 1, #prefix do diff = bor(diff, bxor(byte(record, i), byte(prefix, i))) end
  if diff == 0 then
    redis.call('DEL', KEYS[1], KEYS[2])
    return {'taken', record}
  end
end
-- The attempts expire with the record they count.
redis.call('SET', KEYS[2], attempt, 'PX', math.max(1, redis.call('PTTL', KEYS[1])))
if log then
  ${LOG_ADD('log', 'now', 'ARGV[4]', 'ARGV[6]')}
  local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
  return {'wrong', record, attempt, redis.call('ZCARD', log), oldest[2]}
end
return {'wrong', record, attempt}`);
// KEYS: the record, its attempts, and the failures log if any. ARGV: the
// record guessed at, and the failure's id.
const GIVE_BACK_GUESS = script(`
if KEYS[3] then redis.call('ZREM', KEYS[3], ARGV[2]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  local attempts = tonumber(redis.call('GET', KEYS[2]) or '0')
  if attempts > 0 then redis.call('DECR', KEYS[2]) end
end
return 1`);
const DELETE_IF_EQUALS = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`);

type RedisClient = Redis | Cluster;

export type RedisStoreOptions = {
  /** One redis:// URL, or several comma-separated seed URLs of a Redis Cluster. */
  url: string;
  logger: Logger;
  /** Prepended to every key (tests isolate themselves with it). */
  keyPrefix?: string;
};

/** A command unanswered this long fails (a 503); Redis answers ours in well under a millisecond. */
const COMMAND_TIMEOUT_MS = 3000;
/**
 * Timed-out commands in a row, with no answer between them, after which the
 * connection is replaced. One can be a slow Redis whose answer comes late
 * (and is matched to it); two in a row mean nothing comes back on it.
 */
const TIMEOUTS_BEFORE_RECONNECT = 2;

/**
 * The shared store for production: every instance sees the same codes and
 * counters. Commands fail fast while Redis is unreachable (no offline queue),
 * so requests get a 503 instead of hanging, and the client reconnects by itself.
 *
 * A connection can also stay open and stop working: when bytes were lost on
 * the way (a proxy or a network that took them and answered nothing), every
 * later reply is matched to an earlier command, so each new command waits for
 * an answer that went to another, for ever. Such a connection is replaced:
 * when it is silent for a while with commands waiting (socketTimeout), and
 * when commands time out in a row on it.
 */
export class RedisStore implements KeyValueStore {
  readonly inProcess = false;
  private readonly client: RedisClient;
  private readonly prefix: string;
  private readonly logger: Logger;
  /** Its connections are corked until this turn of the event loop ends (see send). */
  private corked = false;
  /** Ids of log events: unique across instances (a random prefix) without drawing bytes for each. */
  private readonly eventIdPrefix = randomBytes(6).toString('base64url');
  private nextEventId = 0;
  /** Counts (re)connections: a timeout counts against the connection its command went out on. */
  private connection = 0;
  private timeoutsInARow = 0;

  private constructor(client: RedisClient, prefix: string, logger: Logger) {
    this.client = client;
    this.prefix = prefix;
    this.logger = logger;
    client.on('ready', () => {
      this.connection++;
      this.timeoutsInARow = 0;
    });
  }

  static async connect(options: RedisStoreOptions): Promise<RedisStore> {
    const seeds = options.url
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    // Per connection (each node of a cluster has its own).
    const connection = {
      maxRetriesPerRequest: 1,
      connectTimeout: 3000,
      commandTimeout: COMMAND_TIMEOUT_MS,
      // Commands waiting and no byte back for this long: the connection is
      // dropped and made again. A bit longer than a command's timeout, so
      // that the command fails first, with its own error.
      socketTimeout: COMMAND_TIMEOUT_MS + 2000,
      // Idle connections are probed by TCP too, so a peer gone without a
      // word (a failover, a NAT entry expired) is noticed between requests.
      keepAlive: 10_000,
      // A command that was waiting when its connection dropped has been
      // answered (a 503, after its timeout) by the time a new connection is
      // ready: sending it again then would apply a change, or take a code,
      // that its caller was told failed.
      autoResendUnfulfilledCommands: false,
    };
    const clientOptions = { enableOfflineQueue: false, lazyConnect: true };
    const retryStrategy = (attempt: number) => Math.min(attempt * 200, 2000);
    let client: RedisClient;
    if (seeds.length > 1) {
      client = new Cluster(
        seeds.map((seed) => {
          const url = new URL(seed);
          return { host: url.hostname, port: Number(url.port || 6379) };
        }),
        {
          ...clientOptions,
          clusterRetryStrategy: retryStrategy,
          redisOptions: { ...connection, ...passwordOf(seeds[0] as string) },
        },
      );
    } else {
      client = new Redis(seeds[0] as string, { ...connection, ...clientOptions, retryStrategy });
    }
    let lastLoggedMs = 0;
    client.on('error', (error: Error) => {
      // ioredis emits an error per reconnection attempt; keep the log readable.
      const nowMs = Date.now();
      if (nowMs - lastLoggedMs > 10_000) {
        lastLoggedMs = nowMs;
        options.logger.warn({ err: error }, 'Redis connection error');
      }
    });
    try {
      await client.connect();
    } catch (error) {
      client.disconnect();
      throw new StoreUnavailableError(`Redis is unreachable: ${(error as Error).message}`);
    }
    return new RedisStore(client, options.keyPrefix ?? '', options.logger);
  }

  private async run<T>(operation: () => Promise<T>): Promise<T> {
    const connection = this.connection;
    try {
      const value = await operation();
      if (connection === this.connection) this.timeoutsInARow = 0;
      return value;
    } catch (error) {
      // A ReplyError is Redis refusing a command: a bug, not an outage.
      if (error instanceof ReplyError) throw error;
      if ((error as Error).message === 'Command timed out') this.timedOut(connection);
      throw new StoreUnavailableError(`Redis is unreachable: ${(error as Error).message}`);
    }
  }

  private timedOut(connection: number): void {
    if (connection !== this.connection) return;
    if (++this.timeoutsInARow < TIMEOUTS_BEFORE_RECONNECT) return;
    this.connection++;
    this.timeoutsInARow = 0;
    this.logger.warn('Redis answered nothing to several commands in a row: reconnecting');
    this.client.disconnect(true);
  }

  private k(key: string): string {
    return this.prefix + key;
  }

  /**
   * The client to send a command with. Commands issued in one turn of the
   * event loop go out in one write per connection: the connections (a
   * cluster's, one per node) are corked at the first command and uncorked once
   * the turn's I/O callbacks have run (setImmediate), and the next turn's
   * commands go out at once, whatever is still awaiting replies. ioredis's
   * auto-pipelining batches the same way but sends a batch only when the
   * previous one is fully answered, so under load every command waited an
   * extra round trip (measured in bench/README.md).
   */
  private send(): RedisClient {
    const client = this.client;
    if (!this.corked) {
      const nodes = client instanceof Redis ? [client] : client.nodes('master');
      const streams = nodes.filter((node) => node.status === 'ready').map((node) => node.stream);
      if (streams.length > 0) {
        for (const stream of streams) stream.cork();
        this.corked = true;
        setImmediate(() => {
          this.corked = false;
          for (const stream of streams) stream.uncork();
        });
      }
    }
    return client;
  }

  /**
   * Runs a script by its SHA-1, sending its text only when the server does
   * not have it (first use, or after a restart or SCRIPT FLUSH). Plain
   * EVALSHA costs less per call than ioredis's defineCommand wrapper.
   */
  private async script(
    script: Script,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    const prefixed = keys.map((key) => this.k(key));
    try {
      return await this.send().evalsha(script.sha, prefixed.length, ...prefixed, ...args);
    } catch (error) {
      if (!(error instanceof ReplyError) || !(error as Error).message.startsWith('NOSCRIPT'))
        throw error;
      return await this.send().eval(script.lua, prefixed.length, ...prefixed, ...args);
    }
  }

  get(key: string): Promise<string | null> {
    return this.run(() => this.send().get(this.k(key)));
  }

  getMany(keys: readonly string[]): Promise<(string | null)[]> {
    return this.run(() => this.send().mget(keys.map((key) => this.k(key))));
  }

  set(key: string, value: string, ttlSeconds: number): Promise<void> {
    return this.run(async () => {
      await this.send().set(this.k(key), value, 'EX', ttlSeconds);
    });
  }

  setAndDelete(
    key: string,
    value: string,
    ttlSeconds: number,
    deleteKeys: readonly string[],
  ): Promise<void> {
    return this.run(async () => {
      await this.script(SET_AND_DELETE, [key, ...deleteKeys], [value, ttlSeconds]);
    });
  }

  setIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean> {
    return this.run(async () => {
      const reply = await this.send().set(this.k(key), value, 'EX', ttlSeconds, 'NX');
      return reply === 'OK';
    });
  }

  getAndDelete(key: string): Promise<string | null> {
    return this.run(() => this.send().getdel(this.k(key)));
  }

  deleteIfEquals(key: string, value: string): Promise<boolean> {
    return this.run(async () => (await this.script(DELETE_IF_EQUALS, [key], [value])) === 1);
  }

  increment(key: string, ttlSeconds: number, by = 1): Promise<number> {
    return this.run(async () => Number(await this.script(INCREMENT, [key], [ttlSeconds, by])));
  }

  incrementAndGet(
    counters: readonly Counter[],
    keys: readonly string[],
  ): Promise<{ counts: number[]; values: (string | null)[] }> {
    return this.run(async () => {
      const reply = (await this.script(
        INCREMENT_AND_GET,
        [...counters.map((c) => c.key), ...keys],
        [counters.length, ...counters.map((c) => c.ttlSeconds)],
      )) as (number | string | null)[];
      return {
        counts: reply.slice(0, counters.length).map(Number),
        values: reply.slice(counters.length) as (string | null)[],
      };
    });
  }

  private eventId(): string {
    return `${this.eventIdPrefix}.${(this.nextEventId++).toString(36)}`;
  }

  addToLog(log: LogLimit, nowMs: number): Promise<LogAdded> {
    return this.run(async () => {
      const id = this.eventId();
      const [wait, held, oldestAtMs] = (await this.script(
        ADD_TO_LOG,
        [log.key],
        [nowMs, log.windowSeconds * 1000, log.limit, id],
      )) as [number, number?, string?];
      if (wait > 0) return { ok: false, retryAfterMs: wait };
      return { ok: true, id, held: Number(held), oldestAtMs: Number(oldestAtMs) };
    });
  }

  removeFromLog(key: string, id: string): Promise<void> {
    return this.run(async () => {
      await this.send().zrem(this.k(key), id);
    });
  }

  guess(guess: Guess, nowMs: number): Promise<GuessOutcome> {
    return this.run(async () => {
      const { failures } = guess;
      const failureId = failures ? this.eventId() : undefined;
      const reply = (await this.script(
        GUESS,
        failures ? [guess.key, guess.attemptsKey, failures.key] : [guess.key, guess.attemptsKey],
        [
          guess.prefix,
          guess.maxAttempts,
          nowMs,
          ...(failures ? [failures.windowSeconds * 1000, failures.limit, failureId as string] : []),
        ],
      )) as [GuessOutcome['outcome'], (string | number)?, number?, number?, string?];
      const [outcome, detail, attempt, held, oldestAtMs] = reply;
      switch (outcome) {
        case 'capped':
          return { outcome, retryAfterMs: Number(detail) };
        case 'absent':
          return { outcome };
        case 'exhausted':
        case 'taken':
          return { outcome, record: String(detail) };
        case 'wrong':
          return {
            outcome,
            record: String(detail),
            attempt: Number(attempt),
            ...(failureId ? { failureId } : {}),
            ...(held !== undefined
              ? { failures: { held: Number(held), oldestAtMs: Number(oldestAtMs) } }
              : {}),
          };
      }
    });
  }

  giveBackGuess(guess: Guess, record: string, failureId: string | undefined): Promise<void> {
    return this.run(async () => {
      const log = guess.failures && failureId !== undefined ? guess.failures.key : undefined;
      await this.script(
        GIVE_BACK_GUESS,
        log ? [guess.key, guess.attemptsKey, log] : [guess.key, guess.attemptsKey],
        log ? [record, failureId as string] : [record],
      );
    });
  }

  delete(key: string): Promise<void> {
    return this.run(async () => {
      await this.send().del(this.k(key));
    });
  }

  ttlSeconds(key: string): Promise<number | null> {
    return this.run(async () => {
      const ttl = await this.send().ttl(this.k(key));
      return ttl >= 0 ? ttl : null;
    });
  }

  ping(): Promise<void> {
    return this.run(async () => {
      await this.send().ping();
    });
  }

  async close(): Promise<void> {
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}

function passwordOf(seed: string): { username?: string; password?: string } {
  const url = new URL(seed);
  return {
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
  };
}
