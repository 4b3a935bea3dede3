import { parseArgs } from 'node:util';
import pino, { type Logger } from 'pino';
import { normalizePhone } from '../auth/phone.js';
import { type Config, ConfigError, loadConfig, loadDotEnv } from '../config.js';
import { type Database, openDatabase } from '../db/client.js';
import { composeServices } from '../deps.js';
import { systemClock } from '../lib/clock.js';
import { cryptoRandom } from '../lib/random.js';
import type { KeyValueStore } from '../store/key-value-store.js';
import { MemoryStore } from '../store/memory-store.js';
import type { AdminActor, AdminService } from './admin-service.js';

/**
 * `npm run cli -- <command>`: the admin actions of SPEC 5 from the command
 * line, on the service's own database and store (DATABASE_URL or DATA_DIR,
 * REDIS_URL), each audited with the actor `cli`. Output is one line per
 * result on stdout; errors are one line on stderr.
 */

const USAGE = `usage: npm run cli -- <command> [phone number]

commands:
  create-admin <number>   make the number's user an admin, creating the user if needed
  revoke-admin <number>   take admin rights away (at once, on every instance)
  block <number>          block the user and revoke all their tokens
  unblock <number>        let the user sign in again (revoked tokens stay revoked)
  revoke-tokens <number>  sign the user out everywhere
  stats [--json]          totals and the top referrers

A number may be written any way the API accepts (+7 999 123-45-67, 8 (999) 123-45-67).
The database is the service's: DATABASE_URL, or the embedded one in DATA_DIR (which
the service must not be holding), and REDIS_URL, from the environment or .env.
Exit status: 0 done, 1 failed (no such user, database unreachable), 2 bad command line.
`;

const NUMBER_COMMANDS = ['create-admin', 'revoke-admin', 'block', 'unblock', 'revoke-tokens'];
const COMMANDS = [...NUMBER_COMMANDS, 'stats'];

class Failure extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
  }
}

type Parsed = { command: string; number: string | undefined; json: boolean };

function parseOrFail(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: { help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new Failure((error as Error).message, 2);
  }
}

function parseCommandLine(argv: string[]): Parsed | 'help' {
  const parsed = parseOrFail(argv);
  const [command, number, ...extra] = parsed.positionals;
  if (parsed.values.help || command === 'help') return 'help';
  if (command === undefined) throw new Failure('no command given', 2);
  if (!COMMANDS.includes(command)) throw new Failure(`unknown command "${command}"`, 2);
  const wantsNumber = NUMBER_COMMANDS.includes(command);
  if (wantsNumber && number === undefined) throw new Failure(`${command} needs a phone number`, 2);
  if (extra.length > 0 || (!wantsNumber && number !== undefined)) {
    throw new Failure(`too many arguments for ${command}`, 2);
  }
  if (parsed.values.json && command !== 'stats') throw new Failure('--json is for stats', 2);
  return { command, number, json: parsed.values.json === true };
}

function readConfig(): Config {
  const env = { ...process.env };
  loadDotEnv(env);
  try {
    return loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) throw new Failure(error.message, 1);
    throw error;
  }
}

async function openStore(config: Config, logger: Logger): Promise<KeyValueStore> {
  if (!config.REDIS_URL) return new MemoryStore(systemClock);
  const { RedisStore } = await import('../store/redis-store.js');
  return RedisStore.connect({ url: config.REDIS_URL, logger });
}

async function run(parsed: Parsed, admin: AdminService, config: Config): Promise<string> {
  const actor: AdminActor = { kind: 'cli' };
  if (parsed.command === 'stats') {
    const stats = await admin.stats();
    if (parsed.json) return JSON.stringify(stats, null, 2);
    const top = stats.top_referrers.map(
      (r, i) =>
        `  ${String(i + 1).padStart(2)}. ${r.phone_number.padEnd(16)} ${String(r.referrals_count).padStart(8)}  (user ${r.id})`,
    );
    return [
      `users        ${stats.users_total} (${stats.users_last_24h} in the last 24 hours)`,
      `activations  ${stats.activations_total} (${stats.activations_last_24h} in the last 24 hours)`,
      `sign-ins     ${stats.sign_ins_last_24h} in the last 24 hours`,
      top.length > 0 ? `top referrers:\n${top.join('\n')}` : 'top referrers: none yet',
    ].join('\n');
  }
  const input = parsed.number as string;
  // Any region: an admin may act on any number that has an account.
  const phone = normalizePhone(input, {
    defaultRegion: config.DEFAULT_PHONE_REGION,
    allowedRegions: [],
    deniedRegions: [],
    allowNonMobile: true,
  });
  if (!phone.ok) throw new Failure(`"${input}" is not a valid phone number`, 2);
  const phoneNumber = phone.phoneNumber;
  if (parsed.command === 'create-admin') {
    const { user, created } = await admin.createAdmin(phoneNumber, actor);
    return `${phoneNumber} (user ${user.id}) is an admin${created ? '; the user was created' : ''}`;
  }
  const user = await admin.findUserByPhone(phoneNumber);
  if (user === null) throw new Failure(`no user has the number ${phoneNumber}`, 1);
  const who = `${phoneNumber} (user ${user.id})`;
  switch (parsed.command) {
    case 'revoke-admin':
      await admin.setStaff(user.id, false, actor);
      return `${who} is no longer an admin`;
    case 'block': {
      const changed = await admin.block(user.id, actor);
      return `${who} is blocked; tokens revoked: ${changed?.revoked ?? 0}`;
    }
    case 'unblock':
      await admin.unblock(user.id, actor);
      return `${who} is unblocked and may sign in again`;
    default: {
      const changed = await admin.revokeTokens(user.id, actor);
      return `${who}: tokens revoked: ${changed?.revoked ?? 0}`;
    }
  }
}

async function main(argv: string[]): Promise<number> {
  const parsed = parseCommandLine(argv);
  if (parsed === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const config = readConfig();
  // Logs go to stderr, warnings and worse only: stdout is the command's answer.
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const database: Database = await openDatabase({
    url: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    poolSize: 2,
    logger,
  });
  let store: KeyValueStore | undefined;
  try {
    await database.migrate();
    store = await openStore(config, logger);
    if (parsed.command !== 'stats' && database.kind === 'postgres' && !config.REDIS_URL) {
      process.stderr.write(
        'warning: REDIS_URL is not set, so running instances are not told of this change: ' +
          'they may accept cached tokens of this user for up to a minute\n',
      );
    }
    // The plain services: one change, announced to the running instances' caches.
    const { admin } = composeServices({
      config: { ...config, CACHE_SIZE: 0, SIGN_IN_BATCHING: false },
      logger,
      clock: systemClock,
      random: cryptoRandom,
      database,
      store,
    });
    process.stdout.write(`${await run(parsed, admin, config)}\n`);
    return 0;
  } finally {
    await Promise.allSettled([store?.close(), database.close()]);
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof Failure) {
    process.stderr.write(`cli: ${error.message}\n`);
    if (error.exitCode === 2) process.stderr.write('Run with --help for the commands.\n');
    process.exitCode = error.exitCode;
  } else {
    // One line, whatever failed: a DATA_DIR held by the service, an unreachable database.
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`cli: ${message.split('\n').join(' ')}\n`);
    process.exitCode = 1;
  }
}
// An idle pool or client must not keep the command running.
process.exit();
