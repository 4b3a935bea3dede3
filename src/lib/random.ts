import { randomBytes, randomInt } from 'node:crypto';

/** Cryptographically secure randomness, passed in so tests can make it predictable. */
export interface Random {
  bytes(length: number): Buffer;
  /** Uniform integer in [0, maxExclusive). */
  int(maxExclusive: number): number;
}

// Each call into OpenSSL costs about 8 µs here (it checks the process id every
// time), so small draws are served from a block drawn at once, as Node does
// for randomUUID. Every byte is used once.
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let poolOffset = 0;

export const cryptoRandom: Random = {
  bytes: (length) => {
    if (length > 256) return randomBytes(length);
    if (poolOffset + length > pool.length) {
      pool = randomBytes(POOL_BYTES);
      poolOffset = 0;
    }
    const out = Buffer.from(pool.subarray(poolOffset, poolOffset + length));
    poolOffset += length;
    return out;
  },
  int: (maxExclusive) => randomInt(maxExclusive),
};

/** A string of `length` characters drawn uniformly (no modulo bias) from `alphabet`. */
export function randomString(random: Random, alphabet: string, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[random.int(alphabet.length)];
  return out;
}
