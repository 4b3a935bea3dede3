import { afterEach, describe, expect, it } from 'vitest';
import {
  auth,
  backends,
  createTestApp,
  nextPhone,
  requestCode,
  signIn,
  type TestApp,
} from '../helper.js';

type Sample = { name: string; labels: Record<string, string>; value: number };

/** The samples of a Prometheus text exposition (enough of the format for our own output). */
function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[key as string] = value as string;
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

/** Every sample of a metric, as `{labels as k=v,...}: value`, for whole-set comparisons. */
function series(samples: Sample[], name: string): Record<string, number> {
  const found: Record<string, number> = {};
  for (const sample of samples.filter((s) => s.name === name)) {
    const key = Object.entries(sample.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    found[key] = sample.value;
  }
  return found;
}

describe.each(backends)('metrics at /metrics (%s)', (backend) => {
  const apps: TestApp[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0).reverse()) await app.close();
  });
  const make = async (env: Record<string, string> = {}) => {
    const t = await createTestApp({ backend, env });
    apps.push(t);
    return t;
  };
  const scrape = async (t: TestApp, headers: Record<string, string> = {}) => {
    const res = await t.app.inject({ method: 'GET', url: '/metrics', headers });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    return { text: res.body, samples: parseSamples(res.body) };
  };
  const verify = (t: TestApp, phone_number: string, code: string) =>
    t.app.inject({
      method: 'POST',
      url: '/api/auth/verify-code/',
      payload: { phone_number, code },
    });

  it('counts sign-ins, wrong guesses, activations and requests by route pattern', async () => {
    const t = await make();
    const referrer = await signIn(t);
    // A returning user: the second sign-in of the same number, after the resend cooldown.
    t.clock.advance(60);
    await signIn(t, referrer.user.phone_number);
    const phone = nextPhone();
    const code = await requestCode(t, phone);
    const wrong = code === '0000' ? '1111' : '0000';
    expect((await verify(t, phone, wrong)).statusCode).toBe(400);
    const referee = (await verify(t, phone, code)).json();
    const activate = (invite_code: string) =>
      t.app.inject({
        method: 'POST',
        url: '/api/profile/',
        headers: auth(referee.token),
        payload: { invite_code },
      });
    expect((await activate('ZZZZZZ')).statusCode).toBe(400);
    expect((await activate(referrer.user.invite_code)).statusCode).toBe(200);
    expect((await activate(referrer.user.invite_code)).statusCode).toBe(400);
    // Random URLs, as from a scanner: one series, not one per URL.
    for (const path of ['/wp-login.php', '/.env', `/x/${Math.random()}`]) {
      expect((await t.app.inject({ method: 'GET', url: path })).statusCode).toBe(404);
    }
    // A known path with an unknown method is no route either.
    expect((await t.app.inject({ method: 'DELETE', url: '/api/profile/' })).statusCode).toBe(405);

    const { samples } = await scrape(t);
    expect(series(samples, 'otp_codes_sent_total')).toEqual({ 'provider=fake,result=sent': 3 });
    expect(series(samples, 'otp_verifications_total')).toEqual({
      'result=ok': 3,
      'result=invalid_code': 1,
    });
    expect(series(samples, 'sign_ins_total')).toEqual({ 'new_user=true': 2, 'new_user=false': 1 });
    expect(series(samples, 'invite_activations_total')).toEqual({
      'result=ok': 1,
      'result=invite_not_found': 1,
      'result=invite_already_activated': 1,
    });
    expect(series(samples, 'http_requests_total')).toEqual({
      'method=POST,route=/api/auth/request-code/,status=200': 3,
      'method=POST,route=/api/auth/verify-code/,status=200': 3,
      'method=POST,route=/api/auth/verify-code/,status=400': 1,
      'method=POST,route=/api/profile/,status=200': 1,
      'method=POST,route=/api/profile/,status=400': 2,
      'method=GET,route=unmatched,status=404': 3,
      'method=DELETE,route=unmatched,status=405': 1,
    });
    const durations = series(samples, 'http_request_duration_seconds_count');
    expect(durations['method=POST,route=/api/auth/verify-code/']).toBe(4);
    expect(durations['method=GET,route=unmatched']).toBe(3);
    const buckets = series(samples, 'http_request_duration_seconds_bucket');
    expect(buckets['le=+Inf,method=POST,route=/api/auth/verify-code/']).toBe(4);
    // Cumulative: each bucket holds those below it; nothing here takes 10 s.
    const verifyBuckets = Object.entries(buckets)
      .filter(([labels]) => labels.endsWith('method=POST,route=/api/auth/verify-code/'))
      .map(([, count]) => count);
    expect(verifyBuckets).toHaveLength(14);
    expect(verifyBuckets).toEqual([...verifyBuckets].sort((a, b) => a - b));
    expect(buckets['le=10,method=POST,route=/api/auth/verify-code/']).toBe(4);
    const sum = series(samples, 'http_request_duration_seconds_sum');
    expect(sum['method=POST,route=/api/auth/verify-code/']).toBeGreaterThan(0);

    // The scrape itself is counted by the next one.
    const again = await scrape(t);
    expect(
      series(again.samples, 'http_requests_total')['method=GET,route=/metrics,status=200'],
    ).toBe(1);
  });

  it('counts refusals by limit, failed sends, and no SMS for fixed test codes', async () => {
    const t = await make({
      SMS_MAX_PER_HOUR: '500',
      OTP_MAX_ATTEMPTS: '1',
      OTP_MAX_FAILED_PER_PHONE_PER_HOUR: '0',
      TEST_PHONE_NUMBERS: '+79990000001:1234',
    });
    const phone = nextPhone();
    const code = await requestCode(t, phone);
    const wrong = code === '0000' ? '1111' : '0000';
    // Within the resend cooldown.
    const again = await t.app.inject({
      method: 'POST',
      url: '/api/auth/request-code/',
      payload: { phone_number: phone },
    });
    expect(again.statusCode).toBe(429);
    expect((await verify(t, phone, wrong)).statusCode).toBe(400);
    expect((await verify(t, phone, wrong)).json().code).toBe('too_many_attempts');
    await requestCode(t, '+79990000001');
    t.sms.failing = true;
    const failed = await t.app.inject({
      method: 'POST',
      url: '/api/auth/request-code/',
      payload: { phone_number: nextPhone() },
    });
    expect(failed.statusCode).toBe(502);

    const { samples } = await scrape(t);
    expect(series(samples, 'otp_codes_sent_total')).toEqual({
      'provider=fake,result=sent': 1,
      'provider=fake,result=rate_limited': 1,
      'provider=fake,result=failed': 1,
    });
    expect(series(samples, 'sms_max_per_hour')).toEqual({ '': 500 });
    expect(series(samples, 'rate_limited_total')).toEqual({
      'reason=send_cooldown': 1,
      'reason=verify_code': 1,
    });
    expect(series(samples, 'otp_verifications_total')).toEqual({
      'result=invalid_code': 1,
      'result=too_many_attempts': 1,
    });
  });

  it('shows the process defaults and every metric of the spec, the idle ones at zero', async () => {
    const t = await make();
    const { text, samples } = await scrape(t);
    const names = new Set(samples.map((s) => s.name));
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'process_start_time_seconds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
      'nodejs_version_info',
    ]) {
      expect(names, name).toContain(name);
    }
    for (const [name, type] of [
      ['http_requests_total', 'counter'],
      ['http_request_duration_seconds', 'histogram'],
      ['otp_codes_sent_total', 'counter'],
      ['otp_verifications_total', 'counter'],
      ['sign_ins_total', 'counter'],
      ['invite_activations_total', 'counter'],
      ['rate_limited_total', 'counter'],
      ['webhook_deliveries_total', 'counter'],
      ['outbox_pending', 'gauge'],
      ['fraud_flags_total', 'counter'],
    ]) {
      expect(text).toContain(`\n# TYPE ${name} ${type}\n`);
    }
    expect(series(samples, 'outbox_pending')).toEqual({ '': 0 });
    // The test helper opens the global SMS budget (SMS_MAX_PER_HOUR=0).
    expect(series(samples, 'sms_max_per_hour')).toEqual({ '': 0 });
    expect(series(samples, 'webhook_deliveries_total')).toEqual({});
    expect(series(samples, 'fraud_flags_total')).toEqual({});
  });

  it('keeps the counts of two apps in one process apart', async () => {
    const a = await make();
    const b = await make();
    await signIn(a);
    expect(series((await scrape(a)).samples, 'sign_ins_total')).toEqual({ 'new_user=true': 1 });
    expect(series((await scrape(b)).samples, 'sign_ins_total')).toEqual({});
  });

  it('requires METRICS_TOKEN as a bearer token when it is set', async () => {
    const token = 'metrics-token-0123456789';
    const t = await make({ METRICS_TOKEN: token });
    const get = (headers: Record<string, string> = {}) =>
      t.app.inject({ method: 'GET', url: '/metrics', headers });

    const missing = await get();
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['www-authenticate']).toBe('Bearer');
    expect(missing.json()).toEqual({
      error: 'Authentication credentials were not provided.',
      code: 'not_authenticated',
    });
    for (const authorization of [
      `Bearer ${token}x`,
      `Bearer ${token.slice(0, -1)}`,
      'Bearer ',
      token,
      `Token ${token}`,
      `Basic ${Buffer.from(`x:${token}`).toString('base64')}`,
    ]) {
      const res = await get({ authorization });
      expect(res.statusCode, authorization).toBe(401);
      expect(res.json()).toEqual({ error: 'Invalid metrics token.', code: 'invalid_token' });
    }
    await scrape(t, { authorization: `Bearer ${token}` });
    await scrape(t, { authorization: `bearer  ${token} ` });
    // Refused scrapes are requests like any other, under the route's pattern.
    const { samples } = await scrape(t, { authorization: `Bearer ${token}` });
    expect(series(samples, 'http_requests_total')).toEqual({
      'method=GET,route=/metrics,status=401': 7,
      'method=GET,route=/metrics,status=200': 2,
    });
  });

  it('is open without METRICS_TOKEN, and left out of the OpenAPI document', async () => {
    const t = await make();
    await scrape(t);
    const doc = (await t.app.inject({ method: 'GET', url: '/api/openapi.json' })).json();
    expect(Object.keys(doc.paths)).not.toContain('/metrics');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/healthz', '/readyz']));
  });
});
