/** The workloads: each sets up what it needs through the API, then runs its load. */
import { call, expectOk, inPool, type Json, requestCode, signIn } from './client.js';
import { fmt, phoneNumber } from './common.js';
import type { LoadJob, RequestSpec } from './load.js';
import { type Context, runLoad } from './measure.js';
import type { SeedSummary } from './seed.js';
import type { Service } from './service.js';
import { OPEN_LIMITS } from './service-settings.js';

export const PROFILE_TOKENS = 100;
export const LIGHT_CONNECTIONS = 8;
export const PROFILE_REFERRALS = 20;

export function authorized(token: string, path: string): RequestSpec {
  return { method: 'GET', path, headers: { authorization: `Token ${token}` } };
}

/** GET /healthz: the framework alone, no storage, to tell its cost from the handlers'. */
export async function healthzWorkload(context: Context, service: Service): Promise<void> {
  await runLoad(context, service, {
    workload: 'healthz',
    description: 'GET /healthz: routing, hooks and serialisation without any storage',
    expectedStatus: 200,
    paired: true,
    job: { requests: [{ method: 'GET', path: '/healthz' }] },
  });
}

/** GET /api/profile/ of a user with 20 referrals, over 100 tokens of theirs. */
export async function profileWorkload(context: Context, service: Service): Promise<void> {
  const base = service.baseUrl;
  const owner = phoneNumber(1);
  const tokens = (
    await inPool(Array.from({ length: PROFILE_TOKENS }), 1, () => signIn(base, owner))
  ).map((s) => s.token);
  const first = await expectOk(call(base, 'GET', '/api/profile/', { token: tokens[0] }), 'profile');
  await inPool(
    Array.from({ length: PROFILE_REFERRALS }, (_, i) => i),
    8,
    async (i) => {
      const { token } = await signIn(base, phoneNumber(100 + i));
      await expectOk(
        call(base, 'POST', '/api/profile/', { token, body: { invite_code: first.invite_code } }),
        'activate',
      );
    },
  );
  const profile = await expectOk(
    call(base, 'GET', '/api/profile/', { token: tokens[0] }),
    'profile',
  );
  if (profile.referrals_count !== PROFILE_REFERRALS) {
    throw new Error(`profile set-up: ${profile.referrals_count} referrals`);
  }
  await runLoad(context, service, {
    workload: 'profile',
    description: `GET /api/profile/, ${PROFILE_REFERRALS} referrals, ${PROFILE_TOKENS} tokens`,
    expectedStatus: 200,
    paired: true,
    job: { requests: tokens.map((t) => authorized(t, '/api/profile/')) },
  });
}

/**
 * The profile workload's reads with the per-instance caches off (a second
 * embedded instance on the same DATA_DIR, `CACHE_SIZE=0`): what a first read
 * costs in PGlite. The owner and referrals are those the profile workload made.
 */
export async function uncachedProfileWorkload(context: Context, service: Service): Promise<void> {
  const base = service.baseUrl;
  const tokens = (
    await inPool(Array.from({ length: PROFILE_TOKENS }), 1, () => signIn(base, phoneNumber(1)))
  ).map((s) => s.token);
  const profile = await expectOk(
    call(base, 'GET', '/api/profile/', { token: tokens[0] }),
    'profile',
  );
  if (profile.referrals_count !== PROFILE_REFERRALS) {
    throw new Error(`uncached profile set-up: ${profile.referrals_count} referrals`);
  }
  await runLoad(context, service, {
    workload: 'profile-nocache',
    description: `GET /api/profile/ with CACHE_SIZE=0, ${PROFILE_REFERRALS} referrals, ${PROFILE_TOKENS} tokens`,
    expectedStatus: 200,
    paired: true,
    job: { requests: tokens.map((t) => authorized(t, '/api/profile/')) },
  });
}

/** verify-code with a wrong code, spread over many numbers that each have a live code. */
export async function verifyWorkload(context: Context, service: Service): Promise<void> {
  const { options } = context;
  const maxAttempts = Number(OPEN_LIMITS.OTP_MAX_ATTEMPTS);
  // Enough numbers that even 50,000 wrong guesses a second never use up a code's
  // attempts: each connection guesses over its own share of them, and some
  // go round theirs faster than the average (at 24,000 a second with numbers
  // for 25,000, 1.5% of guesses found their code used up).
  const seconds = options.durationSeconds + options.warmupSeconds;
  const count = Math.max(options.connections, Math.ceil((50_000 * seconds) / maxAttempts));
  const numbers = Array.from({ length: count }, (_, i) => phoneNumber(1_000_000 + i));
  const codes = await inPool(numbers, 32, (phone) => requestCode(service.baseUrl, phone));
  const requests = numbers.map((phone, i): RequestSpec => {
    const code = codes[i] ?? '0000';
    const wrong = String((Number(code) + 1) % 10 ** code.length).padStart(code.length, '0');
    return {
      method: 'POST',
      path: '/api/auth/verify-code/',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ phone_number: phone, code: wrong }),
    };
  });
  // The same bytes as the load will send must be answered as a wrong code, not as bad input.
  const probe = requests[0];
  if (probe?.body) {
    const answer = await call(service.baseUrl, 'POST', probe.path, {
      body: JSON.parse(probe.body) as Json,
    });
    if (answer.status !== 400 || answer.json.code !== 'invalid_code') {
      throw new Error(
        `verify-code with a wrong code: HTTP ${answer.status} ${JSON.stringify(answer.json)}`,
      );
    }
  }
  await runLoad(context, service, {
    workload: 'verify-wrong',
    description: `verify-code with a wrong code over ${count} numbers with live codes`,
    expectedStatus: 400,
    paired: true,
    job: { requests },
  });
}

/** request-code then verify-code with the dev_code, for a new number each time. */
export async function signInWorkload(context: Context, service: Service): Promise<void> {
  await runLoad(context, service, {
    workload: 'sign-in',
    description: 'request-code + verify-code for a new number (new user) each time',
    expectedStatus: 200,
    job: { signIn: { firstNumber: 3_000_000 } },
  });
}

/**
 * Profile and referral pages of the top referrer, and profiles of random users,
 * at scale. `variant` names a second run of the same workloads (`-nocache`).
 */
export async function scaleWorkloads(
  context: Context,
  service: Service,
  seed: SeedSummary,
  variant = '',
) {
  const base = service.baseUrl;
  const tokens = seed.topUser.tokens;
  const top = tokens[0] ?? '';
  const profile = await expectOk(call(base, 'GET', '/api/profile/', { token: top }), 'profile');
  if (profile.referrals_count !== seed.topUser.referralsCount) {
    throw new Error(`scale set-up: top referrer has ${profile.referrals_count} referrals`);
  }
  // Cursors are opaque: collect them by walking the pages, then spread 100 over the list.
  const cursors: string[] = [''];
  for (let cursor: string | null = ''; cursor !== null; ) {
    const query = `?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = await expectOk(
      call(base, 'GET', `/api/profile/referrals/${query}`, { token: top }),
      'referrals page',
    );
    cursor = (page.next_cursor as string | null) ?? null;
    if (cursor !== null) cursors.push(cursor);
  }
  const spread = Array.from(
    { length: Math.min(100, cursors.length) },
    (_, i) => cursors[Math.floor((i * cursors.length) / Math.min(100, cursors.length))] ?? '',
  );
  const referralsCount = fmt(seed.topUser.referralsCount);
  const users = fmt(seed.users);
  const profileJob: LoadJob['requests'] = tokens.map((t) => authorized(t, '/api/profile/'));
  const pagesJob: LoadJob['requests'] = spread.map((cursor, i) =>
    authorized(
      tokens[i % tokens.length] ?? top,
      `/api/profile/referrals/?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    ),
  );
  // At full load the latency is mostly queueing; at 8 connections it is the request's own.
  // The uncached reads have ratio targets (issue 17): bare runs next to them at full load.
  const uncached = variant === '-nocache';
  for (const connections of [context.options.connections, LIGHT_CONNECTIONS]) {
    const full = connections === context.options.connections;
    const suffix = `${variant}${full ? '' : `@${connections}`}`;
    await runLoad(context, service, {
      workload: `scale-profile${suffix}`,
      description: `${users} users: GET /api/profile/ of the top referrer (${referralsCount} referrals), ${tokens.length} tokens`,
      expectedStatus: 200,
      connections,
      paired: uncached && full,
      job: { requests: profileJob },
    });
    await runLoad(context, service, {
      workload: `scale-referrals${suffix}`,
      description: `${users} users: GET /api/profile/referrals/?limit=100 of the top referrer, ${spread.length} cursors across all pages`,
      expectedStatus: 200,
      connections,
      paired: uncached && full,
      job: { requests: pagesJob },
    });
  }
  await runLoad(context, service, {
    workload: `scale-profile-random${variant}`,
    description: `${users} users: GET /api/profile/ of ${seed.sampleUsers.length} random users`,
    expectedStatus: 200,
    paired: uncached,
    job: {
      requests: seed.sampleUsers.map((u) => authorized(u.token, '/api/profile/')),
    },
  });
}

/** `+79991234567` as `8 (999) 123-45-67`: a full number the way a person types it. */
function typedNumber(e164: string): string {
  const d = e164.slice(2);
  return `8 (${d.slice(0, 3)}) ${d.slice(3, 6)}-${d.slice(6, 8)}-${d.slice(8)}`;
}

/**
 * The admin API at scale (issue 18), as the seed's staff user: users search by
 * the last 4 digits of a number (the fewest accepted, so the most matches:
 * about one user in 10,000), by an invite code (lower case), by a full number
 * as typed, and the stats; each at full load and at 8 connections.
 */
const ADMIN_PAGE = 25;

export async function adminWorkloads(context: Context, service: Service, seed: SeedSummary) {
  const staff = seed.staffUser;
  if (!staff || staff.tokens.length === 0) throw new Error('admin workloads: no staff user seeded');
  const token = staff.tokens[0] ?? '';
  const samples = seed.sampleUsers;
  // A page as the admin page asks for it (PAGE_SIZE in web/admin/admin.js).
  const search = (q: string) => `/api/admin/users/?q=${encodeURIComponent(q)}&limit=${ADMIN_PAGE}`;
  const sample = samples[0];
  if (sample) {
    const found = await expectOk(
      call(service.baseUrl, 'GET', search(typedNumber(sample.phoneNumber)), { token }),
      'admin search',
    );
    const results = (found.results ?? []) as { id?: number }[];
    if (!results.some((user) => user.id === sample.id)) {
      throw new Error(`admin search set-up: ${sample.phoneNumber} not found`);
    }
  }
  await expectOk(call(service.baseUrl, 'GET', '/api/admin/stats/', { token }), 'admin stats');
  const users = fmt(seed.users);
  const asStaff = (paths: string[]) =>
    paths.map((path, i) => authorized(staff.tokens[i % staff.tokens.length] ?? token, path));
  const kinds = [
    {
      workload: 'admin-search-digits',
      description: `${users} users: GET /api/admin/users/?q=<last 4 digits>&limit=25 of ${samples.length} numbers`,
      paths: samples.map((u) => search(u.phoneNumber.slice(-4))),
    },
    {
      workload: 'admin-search-code',
      description: `${users} users: GET /api/admin/users/?q=<invite code, lower case>&limit=25 of ${samples.length} users`,
      paths: samples.map((u) => search(u.inviteCode.toLowerCase())),
    },
    {
      workload: 'admin-search-phone',
      description: `${users} users: GET /api/admin/users/?q=8 (9xx) xxx-xx-xx&limit=25, ${samples.length} numbers`,
      paths: samples.map((u) => search(typedNumber(u.phoneNumber))),
    },
    {
      workload: 'admin-stats',
      description: `${users} users: GET /api/admin/stats/ (totals and top referrers)`,
      paths: ['/api/admin/stats/'],
    },
  ];
  for (const connections of [context.options.connections, LIGHT_CONNECTIONS]) {
    const suffix = connections === context.options.connections ? '' : `@${connections}`;
    for (const kind of kinds) {
      await runLoad(context, service, {
        workload: `${kind.workload}${suffix}`,
        description: kind.description,
        expectedStatus: 200,
        connections,
        job: { requests: asStaff(kind.paths) },
      });
    }
  }
}
