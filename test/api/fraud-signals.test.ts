import { afterEach, describe, expect, it } from 'vitest';
import { signInStaff } from '../admin-helper.js';
import {
  auth,
  backends,
  createTestApp,
  nextPhone,
  requestCode,
  type SignedIn,
  type TestApp,
} from '../helper.js';

const DEVICE_RULE = 'A device id is 8 to 128 characters: letters, digits and . _ : + / = -.';

type From = {
  /** The socket's address (default: 127.0.0.1, as every injected request). */
  ip?: string;
  /** X-Forwarded-For (believed with TRUST_PROXY=true). */
  forwardedFor?: string;
  deviceHeader?: string;
  deviceField?: string;
};

describe.each(backends)('fraud signals (%s)', (backend) => {
  let t: TestApp;
  afterEach(async () => {
    await t?.close();
  });

  const verify = (phone: string, code: string, from: From) => {
    const headers: Record<string, string> = {};
    if (from.forwardedFor !== undefined) headers['x-forwarded-for'] = from.forwardedFor;
    if (from.deviceHeader !== undefined) headers['x-device-id'] = from.deviceHeader;
    return t.app.inject({
      method: 'POST',
      url: '/api/auth/verify-code/',
      remoteAddress: from.ip ?? '127.0.0.1',
      headers,
      payload: {
        phone_number: phone,
        code,
        ...(from.deviceField === undefined ? {} : { device_id: from.deviceField }),
      },
    });
  };

  const signInFrom = async (from: From, phone = nextPhone()): Promise<SignedIn> => {
    const code = await requestCode(t, phone);
    const res = await verify(phone, code, from);
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };

  /** Activates `owner`'s code for `who`: it always succeeds, flagged or not. */
  const activate = async (who: SignedIn, owner: SignedIn) => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/profile/',
      headers: auth(who.token),
      payload: { invite_code: owner.user.invite_code },
    });
    expect(res.statusCode, res.body).toBe(200);
    // Nothing in the answer tells the user they were flagged.
    expect(res.body).not.toContain('flag');
    expect(res.json().profile.activated_invite_code).toBe(owner.user.invite_code);
  };

  const adminView = async (staff: SignedIn, user: SignedIn) => {
    const res = await t.app.inject({
      method: 'GET',
      url: `/api/admin/users/${user.user.id}/`,
      headers: auth(staff.token),
    });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };

  const reasons = async (staff: SignedIn, user: SignedIn) =>
    (await adminView(staff, user)).flags.map((f: { reason: string }) => f.reason);

  it('same_ip: the referee signed up from the referrer’s IPv4 address (with TRUST_PROXY, the forwarded client)', async () => {
    t = await createTestApp({ backend, env: { TRUST_PROXY: 'true' } });
    const staff = await signInStaff(t);
    const owner = await signInFrom({ forwardedFor: '203.0.113.5' });
    const twin = await signInFrom({ forwardedFor: '203.0.113.5' });
    const neighbour = await signInFrom({ forwardedFor: '203.0.113.6' });
    // The proxy's own address (the socket's) is not the client's.
    const viaOtherProxy = await signInFrom({ ip: '10.0.0.9', forwardedFor: '198.51.100.7' });
    for (const referee of [twin, neighbour, viaOtherProxy]) await activate(referee, owner);

    expect(await adminView(staff, twin)).toMatchObject({
      flags_count: 1,
      flags: [
        {
          reason: 'same_ip',
          description: expect.stringContaining('NAT'),
          ip: '203.0.113.5',
          referrer_ip: '203.0.113.5',
          network: '203.0.113.5',
        },
      ],
    });
    expect(await adminView(staff, neighbour)).toMatchObject({ flags_count: 0, flags: [] });
    expect(await adminView(staff, viaOtherProxy)).toMatchObject({ flags_count: 0, flags: [] });
    // The owner activated nothing: no flags of their own.
    expect(await adminView(staff, owner)).toMatchObject({ flags_count: 0, flags: [] });
  });

  it('same_ip on IPv6 compares the /64 network: same network flagged, next network not', async () => {
    t = await createTestApp({ backend });
    const staff = await signInStaff(t);
    const owner = await signInFrom({ ip: '2001:db8:1:2::10' });
    const sameNetwork = await signInFrom({ ip: '2001:0DB8:1:2:ffff:ee:dd:1' });
    const nextNetwork = await signInFrom({ ip: '2001:db8:1:3::10' });
    await activate(sameNetwork, owner);
    await activate(nextNetwork, owner);

    expect((await adminView(staff, sameNetwork)).flags).toEqual([
      {
        reason: 'same_ip',
        description: expect.stringContaining('/64'),
        ip: '2001:0DB8:1:2:ffff:ee:dd:1',
        referrer_ip: '2001:db8:1:2::10',
        network: '2001:db8:1:2::/64',
      },
    ]);
    expect((await adminView(staff, nextNetwork)).flags).toEqual([]);
  });

  it('same_device by the X-Device-Id header and by the device_id field; the sign-up device counts, not a later one', async () => {
    t = await createTestApp({ backend, env: { OTP_RESEND_COOLDOWN_SECONDS: '0' } });
    const staff = await signInStaff(t);
    const device = 'device-0123456789abcdef';
    const owner = await signInFrom({ ip: '198.51.100.1', deviceHeader: device });
    const byField = await signInFrom({ ip: '198.51.100.2', deviceField: device });
    const byBoth = await signInFrom({
      ip: '198.51.100.3',
      deviceHeader: device,
      deviceField: device,
    });
    const otherDevice = await signInFrom({ ip: '198.51.100.4', deviceHeader: 'another-device-1' });
    // Signs up without a device id, then signs in again on the owner's device and network.
    const laterOnDevice = await signInFrom({ ip: '198.51.100.5' });
    await signInFrom({ ip: '198.51.100.1', deviceHeader: device }, laterOnDevice.user.phone_number);
    for (const referee of [byField, byBoth, otherDevice, laterOnDevice])
      await activate(referee, owner);

    expect((await adminView(staff, byField)).flags).toEqual([
      { reason: 'same_device', description: expect.any(String), device_id: device },
    ]);
    expect(await reasons(staff, byBoth)).toEqual(['same_device']);
    expect(await reasons(staff, otherDevice)).toEqual([]);
    expect(await reasons(staff, laterOnDevice)).toEqual([]);
  });

  it('records the IP and device id of every sign-in in its audit entry', async () => {
    t = await createTestApp({ backend, env: { OTP_RESEND_COOLDOWN_SECONDS: '0' } });
    const staff = await signInStaff(t);
    const user = await signInFrom({ ip: '198.51.100.1', deviceHeader: 'first-device' });
    await signInFrom({ ip: '2001:db8::7', deviceField: 'second-device' }, user.user.phone_number);
    await signInFrom({ ip: '198.51.100.2' }, user.user.phone_number);
    const res = await t.app.inject({
      method: 'GET',
      url: `/api/admin/audit/?user_id=${user.user.id}&type=sign_in`,
      headers: auth(staff.token),
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(
      res.json().results.map((e: { ip: string; details: object }) => [e.ip, e.details]),
    ).toEqual([
      ['198.51.100.2', { new_user: false }],
      ['2001:db8::7', { new_user: false, device_id: 'second-device' }],
      ['198.51.100.1', { new_user: true, device_id: 'first-device' }],
    ]);
  });

  it('velocity: past FRAUD_VELOCITY_PER_HOUR activations of one referrer in the last hour, counted exactly', async () => {
    t = await createTestApp({ backend, env: { FRAUD_VELOCITY_PER_HOUR: '2' } });
    const staff = await signInStaff(t);
    const owner = await signInFrom({ ip: '198.51.100.1' });
    const referees: SignedIn[] = [];
    for (let i = 0; i < 5; i++) referees.push(await signInFrom({ ip: `198.51.100.${10 + i}` }));
    const [first, second, third, fourth, fifth] = referees as [
      SignedIn,
      SignedIn,
      SignedIn,
      SignedIn,
      SignedIn,
    ];
    await activate(first, owner);
    t.clock.advance(30 * 60);
    await activate(second, owner); // 2 in the hour: at the limit, not past it.
    t.clock.advance(20 * 60);
    await activate(third, owner); // 3 in the hour: past it.
    // The first activation is now more than an hour old: second, third and this one remain.
    t.clock.advance(11 * 60);
    await activate(fourth, owner);
    // Second and third are out of the hour too: only fourth and this one remain.
    t.clock.advance(50 * 60);
    await activate(fifth, owner);

    expect(await reasons(staff, first)).toEqual([]);
    expect(await reasons(staff, second)).toEqual([]);
    expect((await adminView(staff, third)).flags).toEqual([
      {
        reason: 'velocity',
        description: expect.stringContaining('FRAUD_VELOCITY_PER_HOUR'),
        activations_in_hour: 3,
      },
    ]);
    expect(await adminView(staff, fourth)).toMatchObject({
      flags_count: 1,
      flags: [{ reason: 'velocity', activations_in_hour: 3 }],
    });
    expect(await reasons(staff, fifth)).toEqual([]);
  });

  it('FRAUD_VELOCITY_PER_HOUR=0 turns velocity off', async () => {
    t = await createTestApp({ backend, env: { FRAUD_VELOCITY_PER_HOUR: '0' } });
    const staff = await signInStaff(t);
    const owner = await signInFrom({ ip: '198.51.100.1' });
    const referees: SignedIn[] = [];
    for (let i = 0; i < 3; i++) referees.push(await signInFrom({ ip: `198.51.100.${10 + i}` }));
    for (const referee of referees) await activate(referee, owner);
    for (const referee of referees) expect(await reasons(staff, referee)).toEqual([]);
  });

  it('an activation with every flag still succeeds; flags show in the admin list, the audit entry and the metric', async () => {
    t = await createTestApp({ backend, env: { FRAUD_VELOCITY_PER_HOUR: '1' } });
    const staff = await signInStaff(t);
    const from = { ip: '198.51.100.1', deviceHeader: 'shared-device-1' };
    const owner = await signInFrom(from);
    const clean = await signInFrom({ ip: '198.51.100.2' });
    const suspect = await signInFrom(from);
    await activate(clean, owner);
    await activate(suspect, owner);

    expect(await adminView(staff, suspect)).toMatchObject({
      flags_count: 3,
      flags: [
        { reason: 'same_ip', ip: '198.51.100.1' },
        { reason: 'same_device', device_id: 'shared-device-1' },
        { reason: 'velocity', activations_in_hour: 2 },
      ],
    });
    const list = await t.app.inject({
      method: 'GET',
      url: '/api/admin/users/',
      headers: auth(staff.token),
    });
    expect(list.statusCode, list.body).toBe(200);
    const counts = Object.fromEntries(
      list.json().results.map((u: { id: number; flags_count: number }) => [u.id, u.flags_count]),
    );
    expect(counts).toEqual({
      [staff.user.id]: 0,
      [owner.user.id]: 0,
      [clean.user.id]: 0,
      [suspect.user.id]: 3,
    });

    const audit = await t.app.inject({
      method: 'GET',
      url: `/api/admin/audit/?user_id=${suspect.user.id}&type=invite_activated`,
      headers: auth(staff.token),
    });
    expect(audit.json().results.map((e: { details: object }) => e.details)).toEqual([
      { referrer_id: owner.user.id, flags: ['same_ip', 'same_device', 'velocity'] },
    ]);

    const metrics = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain('fraud_flags_total{reason="same_ip"} 1\n');
    expect(metrics).toContain('fraud_flags_total{reason="same_device"} 1\n');
    expect(metrics).toContain('fraud_flags_total{reason="velocity"} 1\n');
    expect(metrics).toContain('invite_activations_total{result="ok"} 2\n');
  });

  it('refuses a bad device id with 400 before checking the code, which still works afterwards', async () => {
    t = await createTestApp({ backend });
    const phone = nextPhone();
    const code = await requestCode(t, phone);
    const bad: [From, string][] = [
      [{ deviceHeader: 'short' }, 'X-Device-Id'],
      [{ deviceHeader: 'x'.repeat(129) }, 'X-Device-Id'],
      [{ deviceHeader: '' }, 'X-Device-Id'],
      [{ deviceHeader: 'has spaces in it' }, 'X-Device-Id'],
      [{ deviceField: 'short' }, 'device_id'],
      [{ deviceField: 'd'.repeat(129) }, 'device_id'],
      [{ deviceField: 'comma,separated' }, 'device_id'],
    ];
    for (const [from, field] of bad) {
      const res = await verify(phone, code, from);
      expect(res.statusCode, JSON.stringify(from)).toBe(400);
      expect(res.json()).toEqual({
        error: 'Invalid input.',
        code: 'validation_error',
        fields: { [field]: [DEVICE_RULE] },
      });
    }
    const differ = await verify(phone, code, {
      deviceHeader: 'device-number-1',
      deviceField: 'device-number-2',
    });
    expect(differ.statusCode).toBe(400);
    expect(differ.json()).toEqual({
      error: 'Invalid input.',
      code: 'validation_error',
      fields: {
        device_id: ['The device_id field and the X-Device-Id header differ; send one of them.'],
      },
    });
    const notString = await t.app.inject({
      method: 'POST',
      url: '/api/auth/verify-code/',
      payload: { phone_number: phone, code, device_id: 12345678 },
    });
    expect(notString.statusCode).toBe(400);
    expect(notString.json()).toEqual({
      error: 'Invalid input.',
      code: 'validation_error',
      fields: { device_id: ['Must be of type string.'] },
    });
    // Repeated headers arrive joined with ", ", which no device id holds.
    const repeated = await t.app.inject({
      method: 'POST',
      url: '/api/auth/verify-code/',
      headers: { 'x-device-id': ['device-number-1', 'device-number-2'] },
      payload: { phone_number: phone, code },
    });
    expect(repeated.statusCode).toBe(400);
    expect(repeated.json().fields).toEqual({ 'X-Device-Id': [DEVICE_RULE] });

    // None of them was a guess: the code is intact. The longest id is accepted.
    const ok = await verify(phone, code, { deviceHeader: `A1._:+/=-${'z'.repeat(119)}` });
    expect(ok.statusCode, ok.body).toBe(200);
  });
});
