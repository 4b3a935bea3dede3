import { afterEach, describe, expect, it } from 'vitest';
import { UserService } from '../../src/auth/user-service.js';
import { backends, createTestApp, scriptedRandom, type TestApp } from '../helper.js';

describe.each(backends)('invite code collisions (%s)', (backend) => {
  let t: TestApp;
  afterEach(async () => {
    await t?.close();
  });

  it('a drawn code that is taken is drawn again; the unique constraint decides', async () => {
    t = await createTestApp({ backend });
    const db = t.deps.database;
    const first = await new UserService(db, t.clock, scriptedRandom([0])).findOrCreate(
      '+79991110001',
    );
    // 'A' six times (taken), then 'B' six times.
    const second = await new UserService(
      db,
      t.clock,
      scriptedRandom([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]),
    ).findOrCreate('+79991110002');
    expect(first.isNew && second.isNew).toBe(true);
    const inviteCode = async (id: number) =>
      (
        await t.deps.database.query<{ invite_code: string }>(
          'test_invite_code',
          'select invite_code from users where id = $1',
          [id],
        )
      )[0]?.invite_code;
    expect(await inviteCode(first.user.id)).toBe('AAAAAA');
    expect(await inviteCode(second.user.id)).toBe('BBBBBB');
  });

  it('gives up with an error, not a loop, when every draw collides', async () => {
    t = await createTestApp({ backend });
    const always = new UserService(t.deps.database, t.clock, scriptedRandom([2]));
    await always.findOrCreate('+79991110003');
    await expect(always.findOrCreate('+79991110004')).rejects.toThrow(
      'could not allocate a unique invite code',
    );
  });
});
