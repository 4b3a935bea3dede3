import { sql } from 'drizzle-orm';
import { type SignedIn, signIn, type TestApp } from './helper.js';

/** Signs a new user in and makes them staff (before their token is first used, so nothing is cached). */
export async function signInStaff(t: TestApp, phone?: string): Promise<SignedIn> {
  const staff = await signIn(t, phone);
  await t.deps.database.db.execute(
    sql`update users set is_staff = true where id = ${staff.user.id}`,
  );
  return staff;
}
