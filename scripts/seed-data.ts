/**
 * Seeds a large, realistic data set straight into PostgreSQL for the scale
 * benchmarks: set-based SQL (generate_series), never one API call per user.
 *
 *   npm run seed:data -- --users 1000000 [--top-referrals 100000] [--tokens 100]
 *     [--sample-users 100] [--staff-tokens 0] [--out seed.json] [--database-url postgres://…]
 *
 * What it makes, appended after any existing users (ids continue from the
 * largest one):
 * - `--users` users joining over the past year, one every few seconds, phones
 *   +791XXXXXXXX derived from the id, unique invite codes;
 * - the first of them is the top referrer, with `--top-referrals` referrals
 *   spread evenly over the others; about 40% of the rest activated the code of
 *   an earlier user, skewed towards early users (who had longer to invite).
 *   The referral graph is a forest because everyone's referrer joined before
 *   them; `referral_seq` numbers each referrer's referrals 1..n in activation
 *   order and `referrals_count` matches, as the service itself keeps them;
 * - one filler API token per user (random, unknown: it only gives the token
 *   table a realistic size), `--tokens` known tokens of the top referrer and one
 *   known token each for `--sample-users` random users. The known tokens are
 *   written to `--out` so that a benchmark can use them;
 * - with `--staff-tokens N`, the last seeded user is staff (`is_staff`) with N
 *   known tokens, for the admin API's benchmarks.
 *
 * Migrations are applied first, so a fresh database works. The users table is
 * locked against writes (reads go on) while the rows go in, so a running
 * service cannot take the ids being filled.
 */
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pg from 'pg';
import pino from 'pino';
import { openDatabase } from '../src/db/client.js';

const INVITE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const INVITE_SPACE = 36 ** 6;
// Coprime with 36^6 (neither even nor a multiple of 3): id -> code is a bijection.
const INVITE_MULTIPLIER = 1_000_003;
// Seeded phones are +79 followed by 9 digits: 100000000 + id, so ids stay below this.
const MAX_SEEDED_ID = 899_999_999;

export type SeedSummary = {
  databaseUrl: string;
  users: number;
  firstUserId: number;
  lastUserId: number;
  topUser: {
    id: number;
    phoneNumber: string;
    inviteCode: string;
    referralsCount: number;
    /** Plain tokens of the top referrer, for `Authorization: Token <t>`. */
    tokens: string[];
  };
  sampleUsers: { id: number; phoneNumber: string; inviteCode: string; token: string }[];
  /** The staff user and its plain tokens, with `--staff-tokens`; null without. */
  staffUser: { id: number; phoneNumber: string; tokens: string[] } | null;
  totals: { users: number; referred: number; apiTokens: number };
  /** `skipped` when the per-row foreign key triggers were off (superuser only). */
  foreignKeyChecks: 'skipped' | 'checked';
  timingsMs: Record<string, number>;
};

type Options = {
  databaseUrl: string;
  users: number;
  topReferrals: number;
  tokens: number;
  sampleUsers: number;
  staffTokens: number;
  fillerTokens: boolean;
  vacuum: boolean;
  tokenTtlDays: number;
  out: string | undefined;
};

function usage(message: string, exitCode = 2): never {
  process.stderr.write(
    `${message}\n\nusage: npm run seed:data -- --users N [--top-referrals N] [--tokens N]\n` +
      '  [--sample-users N] [--staff-tokens N] [--no-filler-tokens] [--no-vacuum] [--out FILE] [--database-url URL]\n' +
      'DATABASE_URL (postgres://…) is used when --database-url is not given.\n',
  );
  process.exit(exitCode);
}

function wholeNumber(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text.replaceAll('_', ''));
  if (!Number.isSafeInteger(value) || value < 0) usage(`--${name} must be a whole number`);
  return value;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      users: { type: 'string' },
      'top-referrals': { type: 'string' },
      tokens: { type: 'string' },
      'sample-users': { type: 'string' },
      'staff-tokens': { type: 'string' },
      'no-filler-tokens': { type: 'boolean', default: false },
      'no-vacuum': { type: 'boolean', default: false },
      out: { type: 'string' },
      'database-url': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) usage('Seeds users, referrals and tokens for the scale benchmarks.', 0);
  const databaseUrl = values['database-url'] ?? process.env.DATABASE_URL;
  if (databaseUrl === undefined || !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    usage('A PostgreSQL database is required: set DATABASE_URL or --database-url postgres://…');
  }
  if (process.env.NODE_ENV === 'production') usage('Refusing to seed with NODE_ENV=production.');
  const users = wholeNumber('users', values.users, 100_000);
  if (users < 2 || users > 10_000_000) usage('--users must be from 2 to 10000000');
  const topReferrals = wholeNumber(
    'top-referrals',
    values['top-referrals'],
    Math.min(100_000, Math.floor(users / 10)),
  );
  if (topReferrals > users - 1) usage('--top-referrals must be below --users');
  const ttl = wholeNumber('TOKEN_TTL_DAYS', process.env.TOKEN_TTL_DAYS, 30);
  return {
    databaseUrl,
    users,
    topReferrals,
    tokens: wholeNumber('tokens', values.tokens, 100),
    sampleUsers: Math.min(users, wholeNumber('sample-users', values['sample-users'], 100)),
    staffTokens: wholeNumber('staff-tokens', values['staff-tokens'], 0),
    fillerTokens: !values['no-filler-tokens'],
    vacuum: !values['no-vacuum'],
    tokenTtlDays: ttl,
    out: values.out,
  };
}

/** SQL for the 6-character invite code of `idExpr` (a bijection on ids below 36^6). */
function inviteCodeSql(idExpr: string): string {
  const n = `((${idExpr}) * ${INVITE_MULTIPLIER} + 7777) % ${INVITE_SPACE}`;
  const digits = [5, 4, 3, 2, 1, 0].map(
    (power) => `substr('${INVITE_ALPHABET}', ((${n} / ${36 ** power}) % 36)::int + 1, 1)`,
  );
  return digits.join(' || ');
}

function phoneSql(idExpr: string): string {
  return `'+79' || (100000000 + (${idExpr}))::text`;
}

function phoneOf(id: number): string {
  return `+79${100_000_000 + id}`;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function newToken(): string {
  // Same shape as the service's tokens: 160 random bits as 40 lowercase hex characters.
  return randomBytes(20).toString('hex');
}

async function timed<T>(
  timings: Record<string, number>,
  label: string,
  work: () => Promise<T>,
): Promise<T> {
  const started = performance.now();
  const result = await work();
  const elapsedMs = Math.round(performance.now() - started);
  timings[label] = elapsedMs;
  process.stderr.write(`seed: ${label} ${(elapsedMs / 1000).toFixed(1)} s\n`);
  return result;
}

async function migrate(databaseUrl: string): Promise<void> {
  const database = await openDatabase({
    url: databaseUrl,
    dataDir: '',
    poolSize: 1,
    logger: pino({ level: 'silent' }),
  });
  try {
    await database.migrate();
  } finally {
    await database.close();
  }
}

export async function seed(options: Options): Promise<SeedSummary> {
  const timings: Record<string, number> = {};
  const started = performance.now();
  await timed(timings, 'migrate', () => migrate(options.databaseUrl));

  const client = new pg.Client({ connectionString: options.databaseUrl });
  await client.connect();
  const expires =
    options.tokenTtlDays > 0 ? `now() + interval '${options.tokenTtlDays} days'` : 'null';
  let base = 0;
  let skippedForeignKeyChecks = false;
  const topTokens = Array.from({ length: options.tokens }, newToken);
  const staffTokens = Array.from({ length: options.staffTokens }, newToken);
  const samples: { id: number; phoneNumber: string; inviteCode: string; token: string }[] = [];
  try {
    await client.query('begin');
    await client.query(`set local work_mem = '256MB'`);
    await client.query(`set local temp_buffers = '512MB'`);
    await client.query('set local synchronous_commit = off');
    // The rows are consistent by construction (every referrer and token owner is
    // inserted here, before the rows that point at it), so the per-row foreign key
    // triggers, which lock every referenced row, only cost time. Turning them off
    // needs a superuser; without one the seed is simply slower.
    skippedForeignKeyChecks = await client
      .query('savepoint fk; set local session_replication_role = replica; release savepoint fk')
      .then(() => true)
      .catch(async () => {
        await client.query('rollback to savepoint fk');
        return false;
      });
    // Writers wait, readers go on: no other insert can take an id in the block filled here.
    await client.query('lock table users in share row exclusive mode');
    const last = await client.query<{ base: string }>(
      'select coalesce(max(id), 0) as base from users',
    );
    base = Number(last.rows[0]?.base ?? 0);
    if (base + options.users > MAX_SEEDED_ID) throw new Error('too many users for seeded phones');

    const n = options.users;
    const stride = options.topReferrals > 0 ? Math.floor((n - 1) / options.topReferrals) : 0;
    await timed(timings, 'plan users and referrals', async () => {
      await client.query('select setseed(0.42)');
      // k = 1..n is the position among the seeded users; k = 1 is the top referrer.
      await client.query(`
        create temp table seed_plan on commit drop as
        select k, ${base} + k as id,
          now() - interval '365 days' * (1 - k::float8 / ${n}) as created_at,
          case
            when ${stride} > 0 and k > 1 and (k - 1) % ${stride} = 0
              and (k - 1) / ${stride} <= ${options.topReferrals} then 1::bigint
            when k > 2 and random() < 0.4 then 2 + floor(random() ^ 2 * (k - 2))::bigint
          end as referrer_k
        from generate_series(1, ${n}::bigint) as k`);
      await client.query(`
        create temp table seed_users on commit drop as
        with activated as (
          select p.*,
            case when referrer_k is not null then
              least(now(), created_at + random() * interval '1 day') end as activated_at
          from seed_plan p
        ), numbered as (
          select a.*,
            case when referrer_k is not null then
              row_number() over (partition by referrer_k order by activated_at, k) end as seq
          from activated a
        ), counts as (
          select referrer_k as k, count(*)::int as referrals_count
          from seed_plan where referrer_k is not null group by referrer_k
        )
        select u.id, ${phoneSql('u.id')} as phone_number,
          (${inviteCodeSql('u.id')})::char(6) as invite_code,
          ${base} + u.referrer_k as referrer_id, u.activated_at, u.seq::int as referral_seq,
          coalesce(c.referrals_count, 0) as referrals_count, u.created_at
        from numbered u left join counts c on c.k = u.k`);
    });

    await timed(timings, 'resolve invite code clashes', async () => {
      // Codes of users signed up through the API are random and may meet a seeded one.
      for (let round = 0; ; round++) {
        // The subquery mentions s so that it runs again, and draws a new code, for each row.
        const clash = await client.query(`
          update seed_users s set invite_code = (
            select string_agg(substr('${INVITE_ALPHABET}', 1 + floor(random() * 36)::int, 1), '')
            from generate_series(1, 6) where s.id is not null)
          where exists (select 1 from users u where u.invite_code = s.invite_code)
            or s.invite_code in (
              select invite_code from seed_users group by invite_code having count(*) > 1)`);
        if (clash.rowCount === 0) break;
        if (round > 20) throw new Error('could not find free invite codes');
      }
      const phones = await client.query(
        'select 1 from seed_users s join users u using (phone_number) limit 1',
      );
      if (phones.rowCount !== 0) throw new Error('a seeded phone number is already registered');
    });

    await timed(timings, 'insert users', async () => {
      await client.query(`
        insert into users (id, phone_number, invite_code, referrer_id, activated_at,
          referral_seq, referrals_count, created_at)
        select id, phone_number, invite_code, referrer_id, activated_at, referral_seq,
          referrals_count, created_at
        from seed_users order by id`);
      // Every id above the largest one is free (the table is locked), so this is safe.
      await client.query(`select setval(pg_get_serial_sequence('users', 'id'), $1)`, [base + n]);
    });

    if (options.fillerTokens) {
      await timed(timings, 'insert filler tokens', async () => {
        // Signed in within the last 29 days (live with the default TTL); plain tokens unknown.
        const ttl = options.tokenTtlDays;
        await client.query(`
          insert into api_tokens (user_id, token_hash, created_at, expires_at)
          select id, hash, created_at,
            ${ttl > 0 ? `created_at + interval '${ttl} days'` : 'null'}
          from (
            select id, sha256(uuid_send(gen_random_uuid()) || int8send(id)) as hash,
              now() - random() * interval '29 days' as created_at
            from seed_users
          ) t
          -- In hash order the token_hash index grows at its right edge instead of
          -- touching a random page per row, which matters once it outgrows shared_buffers.
          order by hash`);
      });
    }

    await timed(timings, 'insert known tokens', async () => {
      const sampleIds = new Set<number>();
      while (sampleIds.size < options.sampleUsers) sampleIds.add(base + 2 + randomInt(n - 1));
      for (const id of sampleIds) {
        samples.push({ id, phoneNumber: phoneOf(id), inviteCode: '', token: newToken() });
      }
      const owners = [
        ...topTokens.map(() => base + 1),
        ...samples.map((sample) => sample.id),
        ...staffTokens.map(() => base + n),
      ];
      const hashes = [...topTokens, ...samples.map((sample) => sample.token), ...staffTokens].map(
        sha256,
      );
      if (staffTokens.length > 0) {
        await client.query('update users set is_staff = true where id = $1', [base + n]);
      }
      if (owners.length > 0) {
        await client.query(
          `insert into api_tokens (user_id, token_hash, created_at, expires_at)
           select owner, hash, now(), ${expires}
           from unnest($1::bigint[], $2::bytea[]) as t(owner, hash)`,
          [owners, hashes],
        );
      }
    });

    await timed(timings, 'commit', () => client.query('commit'));
  } catch (error) {
    await client.query('rollback').catch(() => {});
    await client.end();
    throw error;
  }

  try {
    if (options.vacuum) {
      // Fresh statistics for the planner and a visibility map for index-only scans.
      await timed(timings, 'vacuum analyze', () =>
        client.query('vacuum (analyze) users, api_tokens'),
      );
    } else {
      await timed(timings, 'analyze', () => client.query('analyze users, api_tokens'));
    }
    const top = await client.query<{ invite_code: string; referrals_count: number }>(
      'select invite_code, referrals_count from users where id = $1',
      [base + 1],
    );
    const codes = await client.query<{ id: string; invite_code: string }>(
      'select id, invite_code from users where id = any($1::bigint[])',
      [samples.map((sample) => sample.id)],
    );
    const codeOf = new Map(codes.rows.map((row) => [Number(row.id), row.invite_code]));
    for (const sample of samples) sample.inviteCode = codeOf.get(sample.id) ?? '';
    const totals = await client.query<{ users: string; referred: string; tokens: string }>(`
      select (select count(*) from users) as users,
        (select count(*) from users where referrer_id is not null) as referred,
        (select count(*) from api_tokens) as tokens`);
    timings.total = Math.round(performance.now() - started);
    return {
      databaseUrl: options.databaseUrl.replace(/\/\/[^@/]*@/, '//'),
      users: options.users,
      firstUserId: base + 1,
      lastUserId: base + options.users,
      topUser: {
        id: base + 1,
        phoneNumber: phoneOf(base + 1),
        inviteCode: top.rows[0]?.invite_code ?? '',
        referralsCount: top.rows[0]?.referrals_count ?? 0,
        tokens: topTokens,
      },
      sampleUsers: samples,
      staffUser:
        staffTokens.length > 0
          ? {
              id: base + options.users,
              phoneNumber: phoneOf(base + options.users),
              tokens: staffTokens,
            }
          : null,
      totals: {
        users: Number(totals.rows[0]?.users),
        referred: Number(totals.rows[0]?.referred),
        apiTokens: Number(totals.rows[0]?.tokens),
      },
      foreignKeyChecks: skippedForeignKeyChecks ? 'skipped' : 'checked',
      timingsMs: timings,
    };
  } finally {
    await client.end();
  }
}

const options = parseOptions(process.argv.slice(2));
const summary = await seed(options);
if (options.out !== undefined) writeFileSync(options.out, `${JSON.stringify(summary, null, 2)}\n`);
process.stderr.write(
  `seed: ${summary.users} users (ids ${summary.firstUserId}..${summary.lastUserId}) in ` +
    `${(summary.timingsMs.total ?? 0) / 1000} s; top referrer ${summary.topUser.phoneNumber} ` +
    `(${summary.topUser.inviteCode}) has ${summary.topUser.referralsCount} referrals; ` +
    `totals: ${summary.totals.users} users, ${summary.totals.referred} referred, ` +
    `${summary.totals.apiTokens} tokens${options.out ? `; tokens written to ${options.out}` : ''}\n`,
);
