import { Redis } from 'ioredis';

/**
 * Checks that Redis answers, with a throwaway client that tries once and
 * rejects with the real cause (ECONNREFUSED, WRONGPASS, …): RedisStore's own
 * client reconnects by itself and reports only "Connection is closed". Of a
 * cluster's seed list, one seed answering is enough; the credentials of the
 * first seed apply to the others, as in RedisStore.
 */
export async function pingRedis(url: string): Promise<void> {
  const seeds = url
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const credentials = credentialsOf(seeds[0] as string);
  let firstError: unknown;
  for (const seed of seeds) {
    try {
      await pingOnce(seed, credentials);
      return;
    } catch (error) {
      firstError ??= error;
    }
  }
  throw firstError;
}

async function pingOnce(seed: string, credentials: { username?: string; password?: string }) {
  const client = new Redis(seed, {
    ...credentials,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 3000,
    commandTimeout: 3000,
  });
  let cause: Error | undefined;
  client.on('error', (error: Error) => {
    cause ??= error;
  });
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    throw cause ?? error;
  } finally {
    client.disconnect();
  }
}

function credentialsOf(seed: string): { username?: string; password?: string } {
  const url = new URL(seed);
  return {
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
  };
}
