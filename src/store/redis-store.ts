import { createHash } from 'node:crypto';
import { Cluster, Redis, ReplyError } from 'ioredis';
import type { Logger } from 'pino';
import {
  type Counter,
  type KeyValueStore,
  StoreUnavailableError,
  type Take,
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
// KEYS: the counters, then the keys to read. ARGV: the number of counters,
// their TTLs, then for a take: the index of the key read, prefix, count limit.
const INCREMENT_AND_GET = script(`
local counters = tonumber(ARGV[1])
local result = {}
for i = 1, counters do
  result[i] = redis.call('INCR', KEYS[i])
  if redis.call('TTL', KEYS[i]) == -1 then redis.call('EXPIRE', KEYS[i], ARGV[i + 1]) end
end
for i = counters + 1, #KEYS do result[i] = redis.call('GET', KEYS[i]) end
local taken = 0
local take = ARGV[counters + 2]
if take and (counters == 0 or result[1] <= tonumber(ARGV[counters + 4])) then
  local index = counters + 1 + tonumber(take)
  local prefix = ARGV[counters + 3]
  local value = result[index]
  if value and #value >= #prefix then
    -- In constant time: every byte is compared, whatever the first difference.
    local byte, bor, bxor, diff = string.byte, bit.bor, bit.bxor, 0
    for i = 1, #prefix do diff = bor(diff, bxor(byte(value, i), byte(prefix, i))) end
    if diff == 0 then
      taken = redis.call('DEL', KEYS[index])
      if counters > 0 then redis.call('DEL', KEYS[1]) end
    end
  end
end
result[#KEYS + 1] = taken
return result`);
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
  private readonly client: RedisClient;
  private readonly prefix: string;
  private readonly logger: Logger;
  /** Its connections are corked until this turn of the event loop ends (see send). */
  private corked = false;
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
    take?: Take,
  ): Promise<{ counts: number[]; values: (string | null)[]; taken: boolean }> {
    return this.run(async () => {
      const reply = (await this.script(
        INCREMENT_AND_GET,
        counters.length > 0 ? [...counters.map((c) => c.key), ...keys] : keys,
        [
          counters.length,
          ...counters.map((c) => c.ttlSeconds),
          ...(take ? [take.read, take.prefix, take.whileCountAtMost] : []),
        ],
      )) as (number | string | null)[];
      const end = counters.length + keys.length;
      return {
        counts: reply.slice(0, counters.length).map(Number),
        values: reply.slice(counters.length, end) as (string | null)[],
        taken: reply[end] === 1,
      };
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
