import { afterEach, describe, expect, it } from 'vitest';
import { backends, createTestApp, nextPhone, signIn, type TestApp } from '../helper.js';

type Response = { statusCode: number; json(): unknown; headers: Record<string, unknown> };

/** The two headers of an answer, as sent. */
const rateLimitOf = (res: Response) => ({
  policy: res.headers['ratelimit-policy'],
  state: res.headers.ratelimit,
});

describe.each(backends)('RateLimit headers (%s)', (backend) => {
  const apps: TestApp[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0).reverse()) await app.close();
  });
  const make = async (env: Record<string, string>) => {
    const t = await createTestApp({ backend, env });
    apps.push(t);
    return t;
  };
  const requestCode = (t: TestApp, phone_number: string, ip = '203.0.113.7') =>
    t.app.inject({
      method: 'POST',
      url: '/api/auth/request-code/',
      payload: { phone_number },
      remoteAddress: ip,
    });
  const verify = (t: TestApp, phone_number: string, code: string) =>
    t.app.inject({
      method: 'POST',
      url: '/api/auth/verify-code/',
      payload: { phone_number, code },
    });
  /** A 429's retry_after, checked against its Retry-After header. */
  const retryAfterOf = (res: Response): number => {
    expect(res.statusCode).toBe(429);
    const { retry_after } = res.json() as { retry_after: number };
    expect(res.headers['retry-after']).toBe(String(retry_after));
    return retry_after;
  };

  it('count down the per-number cap, and match retry_after on its 429', async () => {
    const t = await make({ OTP_RESEND_COOLDOWN_SECONDS: '0', OTP_MAX_PER_PHONE_PER_HOUR: '3' });
    const phone = nextPhone();
    for (const [remaining, reset] of [
      [2, 3600],
      [1, 3000],
      [0, 2400],
    ]) {
      const res = await requestCode(t, phone);
      expect(res.statusCode).toBe(200);
      expect(rateLimitOf(res)).toEqual({
        policy: '"phone";q=3;w=3600',
        state: `"phone";r=${remaining};t=${reset}`,
      });
      t.clock.advance(600);
    }
    const refused = await requestCode(t, phone);
    const retryAfter = retryAfterOf(refused);
    expect(retryAfter).toBe(3600 - 1200 - 600);
    expect(rateLimitOf(refused)).toEqual({
      policy: '"phone";q=3;w=3600',
      state: `"phone";r=0;t=${retryAfter}`,
    });
    // A send that failed gave the number its place back: nothing of it is used.
    t.sms.failing = true;
    const failed = await requestCode(t, nextPhone());
    expect(failed.statusCode).toBe(502);
    expect(rateLimitOf(failed)).toEqual({
      policy: '"phone";q=3;w=3600',
      state: '"phone";r=3;t=0',
    });
  });

  it('name the limit closest to being hit: the fewest left, then the longest wait', async () => {
    const t = await make({ OTP_MAX_PER_IP_PER_HOUR: '2', OTP_MAX_PER_PHONE_PER_HOUR: '5' });
    // Right after a code, the number's cooldown has none left: it is the closest.
    const first = await requestCode(t, nextPhone());
    expect(rateLimitOf(first)).toEqual({
      policy: '"cooldown";q=1;w=60',
      state: '"cooldown";r=0;t=60',
    });
    // The client's cap is spent too, for longer: it is named.
    const second = await requestCode(t, nextPhone());
    expect(second.statusCode).toBe(200);
    const { state } = rateLimitOf(second);
    expect(rateLimitOf(second).policy).toBe('"ip";q=2;w=3600');
    expect(state).toMatch(/^"ip";r=0;t=\d+$/);
    const refused = await requestCode(t, nextPhone());
    expect(rateLimitOf(refused)).toEqual({
      policy: '"ip";q=2;w=3600',
      state: `"ip";r=0;t=${retryAfterOf(refused)}`,
    });
    expect(state).toBe(`"ip";r=0;t=${retryAfterOf(refused)}`);
  });

  it('a country over its budget is told so in the headers', async () => {
    const t = await make({ SMS_MAX_PER_REGION_PER_HOUR: 'KZ:1', OTP_MAX_PER_PHONE_PER_HOUR: '5' });
    expect((await requestCode(t, '+77012345670')).statusCode).toBe(200);
    const refused = await requestCode(t, '+77012345671');
    expect(rateLimitOf(refused)).toEqual({
      policy: '"region";q=1;w=3600',
      state: `"region";r=0;t=${retryAfterOf(refused)}`,
    });
  });

  it('count down the attempts at a code on verify-code, up to its 429', async () => {
    const t = await make({ OTP_MAX_ATTEMPTS: '3' });
    const phone = nextPhone();
    const code = (await requestCode(t, phone)).json() as { dev_code: string };
    const wrong = code.dev_code === '0000' ? '1111' : '0000';
    for (const remaining of [2, 1, 0]) {
      t.clock.advance(10);
      const res = await verify(t, phone, wrong);
      expect(res.statusCode).toBe(400);
      expect(rateLimitOf(res)).toEqual({
        policy: '"code";q=3;w=300',
        state: `"code";r=${remaining};t=${300 - 10 * (3 - remaining)}`,
      });
    }
    const refused = await verify(t, phone, code.dev_code);
    expect(rateLimitOf(refused)).toEqual({
      policy: '"code";q=3;w=300',
      state: `"code";r=0;t=${retryAfterOf(refused)}`,
    });
  });

  it('verify-code counts down the per-number cap on wrong guesses across codes, up to its 429', async () => {
    const t = await make({
      OTP_MAX_FAILED_PER_PHONE_PER_HOUR: '4',
      OTP_MAX_ATTEMPTS: '5',
      OTP_RESEND_COOLDOWN_SECONDS: '0',
    });
    const phone = nextPhone();
    const wrongFor = (code: string) => (code === '0000' ? '1111' : '0000');
    const first = (await requestCode(t, phone)).json() as { dev_code: string };
    const policy = '"phone";q=4;w=3600';
    t.clock.advance(10);
    expect(rateLimitOf(await verify(t, phone, wrongFor(first.dev_code)))).toEqual({
      policy,
      state: '"phone";r=3;t=3600',
    });
    t.clock.advance(10);
    expect(rateLimitOf(await verify(t, phone, wrongFor(first.dev_code))).state).toBe(
      '"phone";r=2;t=3590',
    );
    // A new code has all its attempts; the number's cap goes on counting.
    const second = (await requestCode(t, phone)).json() as { dev_code: string };
    t.clock.advance(10);
    expect(rateLimitOf(await verify(t, phone, wrongFor(second.dev_code))).state).toBe(
      '"phone";r=1;t=3580',
    );
    const last = await verify(t, phone, wrongFor(second.dev_code));
    expect(last.statusCode).toBe(400);
    expect(rateLimitOf(last)).toEqual({ policy, state: '"phone";r=0;t=3580' });
    const refused = await verify(t, phone, second.dev_code);
    expect(rateLimitOf(refused)).toEqual({
      policy,
      state: `"phone";r=0;t=${retryAfterOf(refused)}`,
    });
    expect(retryAfterOf(refused)).toBe(3580);
  });

  it('verify-code names the client cap when it is closest, 200s included', async () => {
    const t = await make({ OTP_MAX_VERIFY_PER_IP_PER_HOUR: '3', OTP_MAX_ATTEMPTS: '5' });
    const phone = nextPhone();
    const code = (await requestCode(t, phone)).json() as { dev_code: string };
    const wrong = code.dev_code === '0000' ? '1111' : '0000';
    expect(rateLimitOf(await verify(t, phone, wrong)).state).toMatch(/^"ip";r=2;t=\d+$/);
    // A sign-in is not counted for the client: it is given back in the headers too.
    const signedIn = await verify(t, phone, code.dev_code);
    expect(signedIn.statusCode).toBe(200);
    expect(rateLimitOf(signedIn)).toEqual({
      policy: '"ip";q=3;w=3600',
      state: expect.stringMatching(/^"ip";r=2;t=\d+$/),
    });
  });

  it('a route without limits has none of the headers', async () => {
    const t = await make({});
    const { token } = await signIn(t);
    const res = await t.app.inject({
      method: 'GET',
      url: '/api/profile/',
      headers: { authorization: `Token ${token}` },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers).not.toHaveProperty('ratelimit');
    expect(res.headers).not.toHaveProperty('ratelimit-policy');
  });
});
