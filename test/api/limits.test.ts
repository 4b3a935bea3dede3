import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { MemoryStore } from '../../src/store/memory-store.js';
import { backends, createTestApp, nextPhone, signIn, type TestApp } from '../helper.js';

const admin = process.env.TEST_REDIS_URL ? new Redis(process.env.TEST_REDIS_URL) : undefined;
afterAll(async () => {
  await admin?.quit();
});

/** Keys a test app's store holds now: what its requests left behind. */
async function keyCount(t: TestApp): Promise<number> {
  if (t.backend === 'embedded') return (t.deps.store as MemoryStore).keyCount();
  let count = 0;
  let cursor = '0';
  do {
    const [next, keys] = await (admin as Redis).scan(
      cursor,
      'MATCH',
      `${t.storage.redisKeyPrefix}*`,
      'COUNT',
      1000,
    );
    cursor = next;
    count += keys.length;
  } while (cursor !== '0');
  return count;
}

const HOUR_MS = 3_600_000;

/** The most of `times` (ms) that fall in any one hour. */
function mostInAnHour(times: number[]): number {
  return Math.max(
    0,
    ...times.map((start) => times.filter((at) => at >= start && at < start + HOUR_MS).length),
  );
}

describe.each(backends)('abuse limits (%s)', (backend) => {
  const apps: TestApp[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0).reverse()) await app.close();
  });
  const make = async (env: Record<string, string>, shareWith?: TestApp) => {
    const t = await createTestApp({ backend, env, shareWith });
    apps.push(t);
    return t;
  };
  const requestCode = (t: TestApp, phone_number: string, ip = '203.0.113.7', headers = {}) =>
    t.app.inject({
      method: 'POST',
      url: '/api/auth/request-code/',
      payload: { phone_number },
      remoteAddress: ip,
      headers,
    });
  const verify = (t: TestApp, phone_number: string, code: string, ip = '203.0.113.7') =>
    t.app.inject({
      method: 'POST',
      url: '/api/auth/verify-code/',
      payload: { phone_number, code },
      remoteAddress: ip,
    });

  type Response = { statusCode: number; json(): unknown; headers: Record<string, unknown> };

  /** A 429 with the whole body and the Retry-After header; returns retry_after. */
  const expectTooMany = (res: Response, code: string, error: string) => {
    expect(res.statusCode).toBe(429);
    const body = res.json() as { retry_after: number };
    expect(body).toEqual({ error, code, retry_after: expect.any(Number) });
    expect(body.retry_after).toBeGreaterThanOrEqual(1);
    expect(res.headers['retry-after']).toBe(String(body.retry_after));
    return body.retry_after;
  };
  const expectLimited = (res: Response, error = 'Too many codes requested. Try again later.') =>
    expectTooMany(res, 'rate_limited', error);
  const cooldownMessage = (seconds: string) =>
    `A code was just sent. You can request a new one in ${seconds}.`;
  const wrongFor = (code: string) => (code === '0000' ? '1111' : '0000');

  it('resend cooldown per number, shared by every way of writing it', async () => {
    const t = await make({ OTP_RESEND_COOLDOWN_SECONDS: '60' });
    expect((await requestCode(t, '+79991112233')).statusCode).toBe(200);
    t.clock.advance(15);
    // The answer says a code is on its way, and when the next may be asked for.
    expect(
      expectLimited(await requestCode(t, '8 (999) 111-22-33'), cooldownMessage('45 seconds')),
    ).toBe(45);
    t.clock.advance(44);
    expect(
      expectLimited(await requestCode(t, '+7 999 111 22 33'), cooldownMessage('1 second')),
    ).toBe(1);
    t.clock.advance(1);
    expect((await requestCode(t, '89991112233')).statusCode).toBe(200);
    expect(t.sms.sent).toHaveLength(2);
  });

  it('per-number hourly cap', async () => {
    const t = await make({ OTP_RESEND_COOLDOWN_SECONDS: '0', OTP_MAX_PER_PHONE_PER_HOUR: '5' });
    const phone = nextPhone();
    for (let i = 0; i < 5; i++) {
      expect((await requestCode(t, phone)).statusCode).toBe(200);
      t.clock.advance(60);
    }
    const retryAfter = expectLimited(await requestCode(t, phone));
    // Exactly until the first of the five is an hour old.
    expect(retryAfter).toBe(3600 - 300);
    expect((await requestCode(t, nextPhone())).statusCode).toBe(200);
    t.clock.advance(retryAfter - 1);
    expect(expectLimited(await requestCode(t, phone))).toBe(1);
    // Waiting as told lets the next one through; no double burst at the hour boundary.
    t.clock.advance(1);
    expect((await requestCode(t, phone)).statusCode).toBe(200);
    expectLimited(await requestCode(t, phone));
    t.clock.advance(2 * 3600);
    for (let i = 0; i < 5; i++) expect((await requestCode(t, phone)).statusCode).toBe(200);
    expectLimited(await requestCode(t, phone));
    expect(t.sms.sent.filter((m) => m.to === phone)).toHaveLength(11);
  });

  it('the hourly caps are exact: a code every 61 s, guessed wrong each time, gets at most 5 codes and 25 guesses in any hour', async () => {
    // The defaults; the slow attack that got 9 codes and 45 compared guesses
    // into one hour when the caps were estimated from two fixed windows.
    const t = await make({});
    const phone = nextPhone();
    t.clock.advance(55 * 60 + 30);
    const sentAt: number[] = [];
    const comparedAt: number[] = [];
    for (let elapsed = 0; elapsed < 3 * 3600; elapsed += 61) {
      const res = await requestCode(t, phone);
      if (res.statusCode === 200) {
        sentAt.push(t.clock.now().getTime());
        const wrong = wrongFor(res.json().dev_code as string);
        for (let i = 0; i < 5; i++) {
          const guess = await verify(t, phone, wrong);
          if (guess.statusCode !== 400) break;
          comparedAt.push(t.clock.now().getTime());
        }
      } else {
        expect(res.statusCode).toBe(429);
      }
      t.clock.advance(61);
    }
    expect(mostInAnHour(sentAt)).toBe(5);
    expect(mostInAnHour(comparedAt)).toBe(25);
    // And no more refused than needed: five codes in each of the three hours.
    expect(sentAt).toHaveLength(15);
    expect(comparedAt).toHaveLength(75);
    expect(t.sms.sent).toHaveLength(15);
  });

  it('per-IP hourly cap, with X-Forwarded-For only when TRUST_PROXY is on', async () => {
    const t = await make({ OTP_MAX_PER_IP_PER_HOUR: '3' });
    for (let i = 0; i < 3; i++) {
      expect(
        (await requestCode(t, nextPhone(), '198.51.100.1', { 'x-forwarded-for': `10.0.0.${i}` }))
          .statusCode,
      ).toBe(200);
    }
    expectLimited(
      await requestCode(t, nextPhone(), '198.51.100.1', { 'x-forwarded-for': '10.9.9.9' }),
    );
    expect((await requestCode(t, nextPhone(), '198.51.100.2')).statusCode).toBe(200);
    // One IPv6 client is one /64.
    for (let i = 1; i <= 3; i++)
      expect((await requestCode(t, nextPhone(), `2001:db8:1:2::${i}`)).statusCode).toBe(200);
    expectLimited(await requestCode(t, nextPhone(), '2001:db8:1:2:ffff::9'));

    const proxied = await make({ OTP_MAX_PER_IP_PER_HOUR: '3', TRUST_PROXY: 'true' });
    for (let i = 0; i < 3; i++) {
      expect(
        (await requestCode(proxied, nextPhone(), '127.0.0.1', { 'x-forwarded-for': '192.0.2.50' }))
          .statusCode,
      ).toBe(200);
    }
    expectLimited(
      await requestCode(proxied, nextPhone(), '127.0.0.1', { 'x-forwarded-for': '192.0.2.50' }),
    );
    expect(
      (await requestCode(proxied, nextPhone(), '127.0.0.1', { 'x-forwarded-for': '192.0.2.51' }))
        .statusCode,
    ).toBe(200);
  });

  it('global hourly SMS budget', async () => {
    const t = await make({ SMS_MAX_PER_HOUR: '3', OTP_MAX_PER_PHONE_PER_HOUR: '1' });
    for (let i = 0; i < 3; i++)
      expect((await requestCode(t, nextPhone(), `192.0.2.${i}`)).statusCode).toBe(200);
    expectLimited(await requestCode(t, nextPhone(), '192.0.2.99'));
    expect(t.sms.sent).toHaveLength(3);
    t.clock.advance(2 * 3600);
    expect((await requestCode(t, nextPhone(), '192.0.2.99')).statusCode).toBe(200);
  });

  it('a request refused by one budget costs nothing from the others', async () => {
    const t = await make({ OTP_MAX_PER_IP_PER_HOUR: '1', OTP_MAX_PER_PHONE_PER_HOUR: '1' });
    expect((await requestCode(t, nextPhone(), '192.0.2.1')).statusCode).toBe(200);
    const late = nextPhone();
    // Refused by the per-IP cap, after the number's cooldown and hourly budget were taken...
    expectLimited(await requestCode(t, late, '192.0.2.1'));
    // ...and both given back: the same number from another client goes through at once.
    expect((await requestCode(t, late, '192.0.2.2')).statusCode).toBe(200);
    expect(t.sms.sent).toHaveLength(2);
  });

  it('wrong guesses are capped per number across codes', async () => {
    const t = await make({
      OTP_RESEND_COOLDOWN_SECONDS: '0',
      OTP_MAX_PER_PHONE_PER_HOUR: '0',
      OTP_MAX_FAILED_PER_PHONE_PER_HOUR: '25',
    });
    const phone = nextPhone();
    let wrongAccepted = 0;
    for (let round = 0; round < 8; round++) {
      const code = (await requestCode(t, phone)).json().dev_code as string;
      const wrong = code === '0000' ? '1111' : '0000';
      for (let i = 0; i < 5; i++) {
        const res = await verify(t, phone, wrong);
        if (res.statusCode === 400) wrongAccepted++;
        else {
          expect(res.statusCode).toBe(429);
          expect(res.json().code).toBe('too_many_attempts');
        }
      }
    }
    expect(wrongAccepted).toBe(25);
    // Locked even with the right code until the hour has slid by.
    const code = (await requestCode(t, phone)).json().dev_code as string;
    const locked = await verify(t, phone, code);
    expect(locked.statusCode).toBe(429);
    expect(locked.json().retry_after).toBeGreaterThan(0);
    // A locked number learns nothing more, not even whether that code was right.
    expect((await verify(t, phone, code)).json().code).toBe('too_many_attempts');
    t.clock.advance(2 * 3600);
    const fresh = (await requestCode(t, phone)).json().dev_code as string;
    expect((await verify(t, phone, fresh)).statusCode).toBe(200);
  });

  it('a wrong guess leaves the hourly cap exactly an hour after it was made', async () => {
    const t = await make({
      OTP_RESEND_COOLDOWN_SECONDS: '0',
      OTP_TTL_SECONDS: '7200',
      OTP_MAX_ATTEMPTS: '10',
      OTP_MAX_FAILED_PER_PHONE_PER_HOUR: '3',
    });
    const phone = nextPhone();
    const code = (await requestCode(t, phone)).json().dev_code as string;
    for (const left of [9, 8, 7]) {
      expect((await verify(t, phone, wrongFor(code))).json()).toEqual({
        error: 'Invalid verification code.',
        code: 'invalid_code',
        attempts_left: left,
      });
      t.clock.advance(10);
    }
    const locked = 'Too many wrong codes for this number. Try again later.';
    expect(expectTooMany(await verify(t, phone, code), 'too_many_attempts', locked)).toBe(3570);
    t.clock.advance(3569);
    expect(expectTooMany(await verify(t, phone, code), 'too_many_attempts', locked)).toBe(1);
    t.clock.advance(1);
    // The refused guesses were not counted, at the code or in the hour.
    expect((await verify(t, phone, wrongFor(code))).json().attempts_left).toBe(6);
    expect(expectTooMany(await verify(t, phone, code), 'too_many_attempts', locked)).toBe(10);
    t.clock.advance(10);
    expect((await verify(t, phone, code)).statusCode).toBe(200);
  });

  it('a burst of parallel wrong guesses compares no more than the hourly cap', async () => {
    const t = await make({ OTP_MAX_ATTEMPTS: '100', OTP_MAX_FAILED_PER_PHONE_PER_HOUR: '10' });
    const phone = nextPhone();
    const code = (await requestCode(t, phone)).json().dev_code as string;
    const wrong = Array.from({ length: 30 }, (_, i) => String(i).padStart(4, '0')).filter(
      (c) => c !== code,
    );
    const results = await Promise.all(wrong.map((c) => verify(t, phone, c)));
    expect(results.filter((r) => r.statusCode === 400)).toHaveLength(10);
    const refused = results.filter((r) => r.statusCode !== 400);
    expect(refused).toHaveLength(wrong.length - 10);
    for (const r of refused) expect(r.json().code).toBe('too_many_attempts');
    expect((await verify(t, phone, code)).statusCode).toBe(429);
  });

  it('only wrong guesses at a live code count toward the hourly cap', async () => {
    const t = await make({
      OTP_RESEND_COOLDOWN_SECONDS: '0',
      OTP_MAX_FAILED_PER_PHONE_PER_HOUR: '3',
    });
    const phone = nextPhone();
    // No code yet: nothing to guess at.
    for (let i = 0; i < 5; i++)
      expect((await verify(t, phone, '0000')).json().code).toBe('code_expired');
    let code = (await requestCode(t, phone)).json().dev_code as string;
    const wrongFor = (c: string) => (c === '0000' ? '1111' : '0000');
    expect((await verify(t, phone, wrongFor(code))).statusCode).toBe(400);
    expect((await verify(t, phone, wrongFor(code))).statusCode).toBe(400);
    // The right code is not a wrong guess, and neither is a second use of it.
    expect((await verify(t, phone, code)).statusCode).toBe(200);
    expect((await verify(t, phone, code)).json().code).toBe('code_expired');
    code = (await requestCode(t, phone)).json().dev_code as string;
    expect((await verify(t, phone, wrongFor(code))).statusCode).toBe(400);
    const locked = await verify(t, phone, wrongFor(code));
    expect(locked.statusCode).toBe(429);
    expect(locked.json().code).toBe('too_many_attempts');
  });

  it('PHONE_ALLOWED_REGIONS refuses other regions with invalid_phone and sends nothing', async () => {
    const t = await make({ PHONE_ALLOWED_REGIONS: 'ru,BY' });
    for (const phone of ['+12025550123', '+77012345678', '+380501234567']) {
      const res = await requestCode(t, phone);
      expect(res.statusCode, phone).toBe(400);
      expect(res.json()).toEqual({
        error: 'Phone numbers from this region are not supported.',
        code: 'invalid_phone',
        fields: { phone_number: ['Phone numbers from this region are not supported.'] },
      });
    }
    expect((await requestCode(t, '+375291234567')).statusCode).toBe(200);
    expect((await requestCode(t, '+79991234567')).statusCode).toBe(200);
    expect(t.sms.sent.map((m) => m.to)).toEqual(['+375291234567', '+79991234567']);
  });

  it('TEST_PHONE_NUMBERS: fixed code, no SMS, no send caps', async () => {
    const t = await make({
      TEST_PHONE_NUMBERS: '+79990000001:1234, 8 999 000-00-02:5678',
      SMS_MAX_PER_HOUR: '1',
    });
    for (let i = 0; i < 10; i++) {
      const res = await requestCode(t, '+79990000001');
      expect(res.statusCode).toBe(200);
      expect(res.json().dev_code).toBe('1234');
    }
    expect((await verify(t, '+79990000001', '1234')).statusCode).toBe(200);
    expect((await requestCode(t, '+79990000002')).json().dev_code).toBe('5678');
    expect(t.sms.sent).toEqual([]);
  });

  it('two instances on one store enforce one limit and share codes', async () => {
    const a = await make({ OTP_RESEND_COOLDOWN_SECONDS: '0', OTP_MAX_PER_PHONE_PER_HOUR: '3' });
    const b = await make({ OTP_RESEND_COOLDOWN_SECONDS: '0', OTP_MAX_PER_PHONE_PER_HOUR: '3' }, a);
    const phone = nextPhone();
    expect((await requestCode(a, phone)).statusCode).toBe(200);
    expect((await requestCode(b, phone)).statusCode).toBe(200);
    const code = (await requestCode(a, phone)).json().dev_code as string;
    expectLimited(await requestCode(b, phone));
    expectLimited(await requestCode(a, phone));
    // A code requested through one instance verifies through the other.
    const res = await verify(b, phone, code);
    expect(res.statusCode).toBe(200);
    // A token issued by one instance works on the other, and so does its revocation.
    const headers = { authorization: `Token ${res.json().token}` };
    expect((await a.app.inject({ method: 'GET', url: '/api/profile/', headers })).statusCode).toBe(
      200,
    );
    await b.app.inject({ method: 'POST', url: '/api/auth/logout/', headers });
    expect((await a.app.inject({ method: 'GET', url: '/api/profile/', headers })).statusCode).toBe(
      401,
    );
  });

  it('verify-code is capped per client across numbers; refusals cost the numbers nothing', async () => {
    const t = await make({ OTP_MAX_VERIFY_PER_IP_PER_HOUR: '10' });
    const phones = Array.from({ length: 5 }, () => nextPhone());
    const codes: string[] = [];
    for (const phone of phones) codes.push((await requestCode(t, phone)).json().dev_code);
    const client = '198.51.100.7';
    const refusal = 'Too many verification attempts from your network. Try again later.';
    for (let i = 0; i < 9; i++) {
      const res = await verify(
        t,
        phones[i % 5] as string,
        wrongFor(codes[i % 5] as string),
        client,
      );
      expect(res.statusCode).toBe(400);
    }
    // A sign-in is not a failed verification: it does not count.
    expect((await verify(t, phones[4] as string, codes[4] as string, client)).statusCode).toBe(200);
    expect(
      (await verify(t, phones[0] as string, wrongFor(codes[0] as string), client)).json(),
    ).toEqual({ error: 'Invalid verification code.', code: 'invalid_code', attempts_left: 2 });
    // The eleventh failure is refused, right code or wrong, and was not counted at the number.
    const retryAfter = expectTooMany(
      await verify(t, phones[1] as string, wrongFor(codes[1] as string), client),
      'too_many_attempts',
      refusal,
    );
    expect(retryAfter).toBeGreaterThan(3600 - 60);
    expectTooMany(
      await verify(t, phones[2] as string, codes[2] as string, client),
      'too_many_attempts',
      refusal,
    );
    expect(
      (await verify(t, phones[1] as string, wrongFor(codes[1] as string), '198.51.100.8')).json(),
    ).toEqual({ error: 'Invalid verification code.', code: 'invalid_code', attempts_left: 2 });
    // The refused right code says nothing, and is used up: it could not sign in now anyway.
    expect(
      (await verify(t, phones[2] as string, codes[2] as string, '198.51.100.8')).json().code,
    ).toBe('code_expired');

    // A burst from one client compares no more than the cap, across numbers.
    const others = Array.from({ length: 10 }, () => nextPhone());
    for (const phone of others) await requestCode(t, phone);
    const burst = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        verify(
          t,
          others[i % 10] as string,
          wrongFor(t.sms.lastCodeFor(others[i % 10] as string) as string),
          '192.0.2.200',
        ),
      ),
    );
    expect(burst.filter((r) => r.statusCode === 400)).toHaveLength(10);
    for (const r of burst.filter((r) => r.statusCode !== 400))
      expectTooMany(r, 'too_many_attempts', refusal);

    // One IPv6 client is one /64.
    const fresh = nextPhone();
    const freshCode = (await requestCode(t, fresh)).json().dev_code as string;
    for (let i = 1; i <= 10; i++)
      expect((await verify(t, nextPhone(), '1234', `2001:db8:5:6::${i}`)).json().code).toBe(
        'code_expired',
      );
    expectTooMany(
      await verify(t, fresh, wrongFor(freshCode), '2001:db8:5:6:ffff::9'),
      'too_many_attempts',
      refusal,
    );
    expect((await verify(t, fresh, freshCode, '2001:db8:5:7::1')).statusCode).toBe(200);
  });

  it('guesses at numbers without a live code create no state', async () => {
    const t = await make({ OTP_MAX_VERIFY_PER_IP_PER_HOUR: '1000' });
    const before = await keyCount(t);
    const numbers = Array.from({ length: 100 }, () => nextPhone());
    for (let round = 0; round < 2; round++) {
      const answers = await Promise.all(numbers.map((phone) => verify(t, phone, '1234')));
      for (const answer of answers) expect(answer.json().code).toBe('code_expired');
    }
    // One key: the client's count of verifications, not one for each number.
    expect((await keyCount(t)) - before).toBe(1);
  });

  it('a code that could not be sent costs the number nothing, but counts for the client', async () => {
    const t = await make({ OTP_MAX_PER_PHONE_PER_HOUR: '1', OTP_MAX_PER_IP_PER_HOUR: '3' });
    const phone = nextPhone();
    t.sms.failing = true;
    for (let i = 0; i < 2; i++) {
      const res = await requestCode(t, phone);
      expect(res.statusCode).toBe(502);
      expect(res.json()).toEqual({
        error: 'The SMS could not be delivered. Try again later.',
        code: 'sms_delivery_failed',
      });
    }
    t.sms.failing = false;
    // At once, within the cooldown of the failures, and within the number's cap of one an hour.
    const sent = await requestCode(t, phone);
    expect(sent.statusCode).toBe(200);
    expect(t.sms.sent).toEqual([
      { to: phone, text: expect.stringContaining(sent.json().dev_code) },
    ]);
    expectLimited(await requestCode(t, phone), cooldownMessage('60 seconds'));
    // The client made three requests: its cap of three is spent, against a client
    // that keeps asking for numbers the provider refuses.
    expectLimited(await requestCode(t, nextPhone()));
  });

  it('a blocked number is sent nothing, and is answered as any other number', async () => {
    const t = await make({});
    const blocked = await signIn(t);
    const registered = await signIn(t);
    const phone = blocked.user.phone_number;
    await t.deps.database.db.execute(
      sql`update users set is_blocked = true where id = ${blocked.user.id}`,
    );
    t.clock.advance(61);
    const sentBefore = t.sms.sent.length;

    const res = await requestCode(t, phone);
    const unknown = await requestCode(t, nextPhone());
    const known = await requestCode(t, registered.user.phone_number);
    for (const other of [unknown, known]) {
      expect(other.statusCode).toBe(200);
      expect(Object.keys(res.json())).toEqual(Object.keys(other.json()));
    }
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      success: true,
      message: 'Verification code sent to your phone number.',
      dev_code: expect.stringMatching(/^\d{4}$/),
      retry_after: 60,
    });
    expect(t.sms.sent.slice(sentBefore).map((m) => m.to)).not.toContain(phone);
    // The same limits...
    expectLimited(await requestCode(t, phone), cooldownMessage('60 seconds'));
    // ...and the same answer to a wrong guess.
    const code = res.json().dev_code as string;
    expect((await verify(t, phone, wrongFor(code))).json()).toEqual({
      error: 'Invalid verification code.',
      code: 'invalid_code',
      attempts_left: 4,
    });
    // The code never signs in.
    const refused = await verify(t, phone, code);
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toEqual({ error: 'This account is blocked.', code: 'forbidden' });
    // Not even once the account is unblocked: it was never sent.
    t.clock.advance(61);
    const withheld = (await requestCode(t, phone)).json().dev_code as string;
    await t.deps.database.db.execute(
      sql`update users set is_blocked = false where id = ${blocked.user.id}`,
    );
    expect((await verify(t, phone, withheld)).json()).toEqual({
      error: 'No valid code for this number. Request a new code.',
      code: 'code_expired',
    });
    t.clock.advance(61);
    const again = (await requestCode(t, phone)).json().dev_code as string;
    expect(t.sms.lastCodeFor(phone)).toBe(again);
    expect((await verify(t, phone, again)).statusCode).toBe(200);
  });
});
