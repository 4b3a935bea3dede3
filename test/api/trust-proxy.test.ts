import { afterEach, describe, expect, it } from 'vitest';
import { createTestApp, nextPhone, type TestApp } from '../helper.js';

/**
 * Which client IP the per-IP send cap counts, behind proxies. A load balancer
 * appends the address it saw to X-Forwarded-For; whatever the client sent
 * comes before it, so a forged left-most entry must not count as the client.
 * The cap is 1 code per client IP: a second request that counts as the same
 * client is a 429.
 */
describe('TRUST_PROXY (embedded)', () => {
  let apps: TestApp[] = [];
  afterEach(async () => {
    for (const t of apps) await t.close();
    apps = [];
  });

  async function make(trustProxy: string): Promise<TestApp> {
    const t = await createTestApp({
      env: { TRUST_PROXY: trustProxy, OTP_MAX_PER_IP_PER_HOUR: '1' },
    });
    apps.push(t);
    return t;
  }

  const request = (t: TestApp, remoteAddress: string, forwardedFor?: string) =>
    t.app.inject({
      method: 'POST',
      url: '/api/auth/request-code/',
      remoteAddress,
      headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
      payload: { phone_number: nextPhone() },
    });

  const balancer = '10.0.0.1';

  it('true is one proxy: the client is the entry it appended, whatever came before', async () => {
    const t = await make('true');
    expect((await request(t, balancer, '198.51.100.1, 203.0.113.7')).statusCode).toBe(200);
    for (const forged of ['198.51.100.2', '198.51.100.3, 192.0.2.9', '']) {
      const entries = forged ? `${forged}, 203.0.113.7` : '203.0.113.7';
      const res = await request(t, balancer, entries);
      expect(res.statusCode, entries).toBe(429);
      expect(res.json().code).toBe('rate_limited');
    }
    // Another client behind the same balancer has its own budget.
    expect((await request(t, balancer, '198.51.100.1, 203.0.113.8')).statusCode).toBe(200);
  });

  it('a number is that many proxies', async () => {
    const t = await make('2');
    expect((await request(t, balancer, '198.51.100.1, 203.0.113.7, 10.1.1.1')).statusCode).toBe(
      200,
    );
    expect((await request(t, balancer, '198.51.100.2, 203.0.113.7, 10.1.1.2')).statusCode).toBe(
      429,
    );
    expect((await request(t, balancer, '203.0.113.8, 10.1.1.1')).statusCode).toBe(200);
  });

  it('addresses or CIDRs name the proxies: only what they appended is believed', async () => {
    const t = await make('10.0.0.0/8, 192.0.2.10');
    expect((await request(t, balancer, '198.51.100.1, 203.0.113.7, 10.2.2.2')).statusCode).toBe(
      200,
    );
    expect((await request(t, '192.0.2.10', '198.51.100.2, 203.0.113.7')).statusCode).toBe(429);
    // A client that reaches the service directly cannot pick its address.
    expect((await request(t, '203.0.113.50', '198.51.100.3')).statusCode).toBe(200);
    expect((await request(t, '203.0.113.50', '198.51.100.4')).statusCode).toBe(429);
  });

  it('false ignores X-Forwarded-For', async () => {
    const t = await make('false');
    expect((await request(t, balancer, '203.0.113.7')).statusCode).toBe(200);
    expect((await request(t, balancer, '203.0.113.8')).statusCode).toBe(429);
  });
});
