import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../helper.js';
import { launchChromium, listenOnLoopback, WatchedPages } from './browser.js';
import { checkAccessibility, viewports } from './page-checks.js';

/*
 * The admin page end to end, through what a person sees: the real app listening on 127.0.0.1,
 * Debian's headless Chromium through playwright-core, elements found by role and accessible
 * name. Screenshots go to test-artifacts/screenshots/admin-*.png (gitignored).
 */

const adminWebDir = new URL('../../web/admin/', import.meta.url);
const screenshotDir = fileURLToPath(new URL('../../test-artifacts/screenshots/', import.meta.url));

const STAFF = '+79990000001';
const OWNER = '+79990000002';
const REFEREE = '+79990000003';
const PLAIN = '+79990000004';

let browser: Browser;
let testApp: TestApp;
let baseUrl: string;
let pages: WatchedPages;

function newPage(locale = 'en-US'): Promise<Page> {
  return pages.newPage({ locale });
}

async function snap(page: Page, name: string): Promise<void> {
  const original = page.viewportSize();
  for (const [label, size] of Object.entries(viewports)) {
    await page.setViewportSize(size);
    await page.screenshot({ path: `${screenshotDir}admin-${name}-${label}.png`, fullPage: true });
  }
  if (original) await page.setViewportSize(original);
}

async function post<T>(path: string, body: object, token?: string): Promise<T> {
  const response = await fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Token ${token}` } : {}),
    },
    body: JSON.stringify(body),
  });
  return (await response.json()) as T;
}

/** Signs in through the API alone, as another client would. */
async function apiSignIn(
  phone: string,
): Promise<{ token: string; inviteCode: string; id: number }> {
  const sent = await post<{ dev_code: string }>('/api/auth/request-code/', { phone_number: phone });
  const verified = await post<{ token: string; user: { id: number; invite_code: string } }>(
    '/api/auth/verify-code/',
    { phone_number: phone, code: sent.dev_code },
  );
  return { token: verified.token, inviteCode: verified.user.invite_code, id: verified.user.id };
}

/** Signs in through the admin page's own form; the page must be showing it. */
async function signInOnPage(page: Page, phone: string): Promise<void> {
  await page.getByRole('heading', { level: 1, name: 'Admin sign-in' }).waitFor();
  await page.getByLabel('Phone number', { exact: true }).fill(phone);
  await page.getByRole('button', { name: 'Get code' }).click();
  const value = page.locator('#dev-code-value');
  await value.waitFor();
  const code = (await value.textContent()) ?? '';
  expect(code).toMatch(/^\d{4,10}$/);
  await page.getByLabel('Code from the SMS').fill(code);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

async function statusText(page: Page): Promise<string> {
  const status = page.getByRole('status');
  await expect.poll(() => status.textContent()).not.toBe('');
  return (await status.textContent()) ?? '';
}

describe('admin page', { timeout: 120_000 }, () => {
  beforeAll(async () => {
    await mkdir(screenshotDir, { recursive: true });
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
  });

  beforeEach(async () => {
    testApp = await createTestApp({ env: { OTP_RESEND_COOLDOWN_SECONDS: '0' } });
    baseUrl = await listenOnLoopback(testApp);
    pages = new WatchedPages(browser);
  }, 120_000);

  afterEach(async () => {
    await pages.closeAndCheck();
    await testApp?.close();
  }, 60_000);

  test('has the same keys in English and Russian, and a strict CSP', async () => {
    const keys = async (lang: string) =>
      Object.keys(
        ((await import(new URL(`i18n/${lang}.js`, adminWebDir).href)) as Record<string, object>)[
          lang
        ] ?? {},
      ).sort();
    const english = await keys('en');
    expect(english.length).toBeGreaterThan(100);
    expect(await keys('ru')).toEqual(english);
    const response = await fetch(`${baseUrl}/admin/`);
    expect(response.status).toBe(200);
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    expect((await fetch(`${baseUrl}/assets/admin/admin.js`)).status).toBe(200);
    expect((await fetch(`${baseUrl}/assets/admin/index.html`)).status).toBe(404);
  });

  test('a staff member signs in, finds a user, follows referrer and referrals, blocks, unblocks, revokes tokens and reads the audit trail', async () => {
    const owner = await apiSignIn(OWNER);
    const referee = await apiSignIn(REFEREE);
    await post('/api/profile/', { invite_code: owner.inviteCode }, referee.token);
    const staff = await apiSignIn(STAFF);
    await testApp.deps.database.db.execute(
      sql`update users set is_staff = true where id = ${staff.id}`,
    );

    const page = await newPage();
    await page.goto(`${baseUrl}/admin/`);
    await signInOnPage(page, STAFF);
    await page.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
    expect(await page.title()).toBe('Users · Invites admin');

    // Totals and the top referrer.
    const stats = page.locator('#stats');
    await expect.poll(() => stats.locator('.stat').count()).toBe(5);
    const totals = await stats.locator('.stat').allTextContents();
    expect(totals).toEqual([
      'Users3',
      'New in 24 hours3',
      'Invite codes activated1',
      'Activated in 24 hours1',
      'Sign-ins in 24 hours4',
    ]);
    const top = page.getByRole('list', { name: 'Top referrers' });
    expect(await top.getByRole('listitem').allTextContents()).toEqual([`${OWNER}Referrals: 1`]);

    // Everyone, newest first.
    const table = page.getByRole('table');
    await expect.poll(() => table.getByRole('row').count()).toBe(4);
    expect(await page.locator('#search-count').textContent()).toBe('All users: 3');
    await checkAccessibility(page);
    await snap(page, 'users');

    // By the last digits of a number.
    await page.getByLabel('Phone number, its last digits, or invite code').fill('0003');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.locator('#search-count').textContent()).toBe('Found: 1');
    // Both signed up from 127.0.0.1: the activation is flagged, and the list says so.
    await table.getByRole('row').filter({ hasText: REFEREE }).getByText('Flags: 1').waitFor();
    await table.getByRole('link', { name: REFEREE }).click();

    // The referee: invited by the owner.
    await page.getByRole('heading', { level: 1, name: REFEREE }).waitFor();
    expect(await page.title()).toBe(`User ${REFEREE} · Invites admin`);
    const details = page.locator('#user-details');
    await expect.poll(() => details.textContent()).toContain('Active tokens1');
    const flags = page.locator('#user-flags');
    expect(await flags.getByRole('listitem').allTextContents()).toEqual([
      'Same IP as the referrerSigned up from 127.0.0.1, the referrer from 127.0.0.1 (network 127.0.0.1).',
    ]);
    expect(await flags.textContent()).toContain('not proof: the activation was not refused');
    await page.locator('#user-referrer').getByRole('link', { name: OWNER }).click();

    // The owner: one referral, the referee.
    await page.getByRole('heading', { level: 1, name: OWNER }).waitFor();
    const referrals = page.getByRole('list', { name: 'Referrals' });
    await expect.poll(() => referrals.getByRole('listitem').count()).toBe(1);
    expect(await page.locator('#user-referrer').textContent()).toBe(
      'Nobody: this user did not activate an invite code.',
    );
    expect(await page.locator('#user-flags').textContent()).toBe('None.');
    await checkAccessibility(page);
    await snap(page, 'user');
    await referrals.getByRole('link', { name: REFEREE }).click();
    await page.getByRole('heading', { level: 1, name: REFEREE }).waitFor();

    // Block: asked first, then done, and the referee's token stops working.
    await page.getByRole('button', { name: 'Block' }).click();
    const dialog = page.getByRole('dialog', { name: `Block ${REFEREE}?` });
    await dialog.waitFor();
    await snap(page, 'confirm');
    await dialog.getByRole('button', { name: 'Block' }).click();
    expect(await statusText(page)).toBe(`${REFEREE} is blocked. Tokens revoked: 1.`);
    await page.locator('#user-badges').getByText('Blocked').waitFor();
    const profile = await fetch(`${baseUrl}/api/profile/`, {
      headers: { authorization: `Token ${referee.token}` },
    });
    expect(profile.status).toBe(401);

    // Unblock: sign-in comes back; revoking asks first too.
    await page.getByRole('button', { name: 'Unblock' }).click();
    await expect
      .poll(() => page.getByRole('status').textContent())
      .toBe(`${REFEREE} is unblocked and can sign in again.`);
    const again = await apiSignIn(REFEREE);
    expect(again.token).toEqual(expect.any(String));
    await page.reload();
    await page.getByRole('heading', { level: 1, name: REFEREE }).waitFor();
    await page.getByRole('button', { name: 'Revoke tokens' }).click();
    const revoke = page.getByRole('dialog', { name: `Revoke the tokens of ${REFEREE}?` });
    await revoke.getByRole('button', { name: 'Cancel' }).click();
    await expect.poll(() => revoke.isVisible()).toBe(false);
    await page.getByRole('button', { name: 'Revoke tokens' }).click();
    await revoke.getByRole('button', { name: 'Revoke tokens' }).click();
    expect(await statusText(page)).toBe(`Tokens of ${REFEREE} revoked: 1.`);

    // The user's audit trail, newest first.
    const trail = page.locator('#user-audit-body tr');
    // The first code went out before the user existed: that entry names the number only.
    await expect.poll(() => trail.count()).toBe(7);
    const events = await page.locator('#user-audit-body tr td:nth-child(2)').allTextContents();
    expect(events).toEqual([
      'Tokens revoked by admin',
      'Signed in',
      'Code sent',
      'Unblocked by admin',
      'Blocked by admin',
      'Invite code activated',
      'Signed in',
    ]);
    expect(await trail.first().locator('td').nth(2).textContent()).toBe(`user ${staff.id}`);

    // The whole log, filtered by type.
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    await page.getByLabel('Event').selectOption({ label: 'Blocked by admin' });
    await page.getByRole('button', { name: 'Show' }).click();
    await expect.poll(() => page.locator('#audit-count').textContent()).toBe('Entries: 1');
    const row = page.locator('#audit-body tr');
    expect(await row.locator('td').allTextContents()).toEqual([
      expect.any(String),
      'Blocked by admin',
      `user ${referee.id}`,
      `user ${staff.id}`,
      '127.0.0.1',
      'revoked: 1',
    ]);
    await checkAccessibility(page);
    await snap(page, 'audit');

    // In Russian, as chosen, and remembered.
    await page.getByRole('button', { name: 'Русский' }).click();
    await page.getByRole('heading', { level: 1, name: 'Журнал аудита' }).waitFor();
    expect(await row.locator('td').nth(1).textContent()).toBe('Заблокирован администратором');
    expect(await page.locator('html').getAttribute('lang')).toBe('ru');
    await page.getByRole('link', { name: 'Пользователи' }).click();
    await page.getByRole('heading', { level: 1, name: 'Пользователи' }).waitFor();
    await page.getByText('Всего пользователей: 3').waitFor();
    await checkAccessibility(page);
    await snap(page, 'users-ru');

    await page.getByRole('button', { name: 'Выйти' }).click();
    await page.getByRole('heading', { level: 1, name: 'Вход для администраторов' }).waitFor();
    expect(await statusText(page)).toBe('Вы вышли.');
  });

  test('a user who is not staff sees "not an admin" and no data', async () => {
    const other = await apiSignIn(OWNER);
    expect(other.token).toEqual(expect.any(String));
    const page = await newPage();
    const adminAnswers: number[] = [];
    page.on('response', (response) => {
      if (new URL(response.url()).pathname.startsWith('/api/admin/')) {
        adminAnswers.push(response.status());
      }
    });
    await page.goto(`${baseUrl}/admin/#/users/1`);
    await signInOnPage(page, PLAIN);
    await page.getByRole('heading', { level: 1, name: 'Not an admin' }).waitFor();
    await expect
      .poll(() => page.locator('#denied-text').textContent())
      .toBe(
        `You are signed in as ${PLAIN}. This account is not an admin, so there is nothing to show here.`,
      );
    expect(await page.title()).toBe('Not an admin · Invites admin');
    expect(await page.locator('#admin-area').isVisible()).toBe(false);
    expect(await page.getByText(OWNER).count()).toBe(0);
    expect(adminAnswers.length).toBeGreaterThan(0);
    expect(adminAnswers.every((status) => status === 403)).toBe(true);
    await checkAccessibility(page);
    await snap(page, 'denied');

    await page.getByRole('button', { name: 'Sign in with another number' }).click();
    await page.getByRole('heading', { level: 1, name: 'Admin sign-in' }).waitFor();
    expect(await page.evaluate(() => localStorage.getItem('referral.token'))).toBeNull();
  });

  test('opens in Russian for a Russian browser, and explains a wrong code', async () => {
    const page = await newPage('ru-RU');
    await page.goto(`${baseUrl}/admin/`);
    await page.getByRole('heading', { level: 1, name: 'Вход для администраторов' }).waitFor();
    await checkAccessibility(page);
    await snap(page, 'sign-in-ru');
    await page.getByRole('button', { name: 'English' }).click();

    await page.getByLabel('Phone number', { exact: true }).fill(PLAIN);
    await page.getByRole('button', { name: 'Get code' }).click();
    const value = page.locator('#dev-code-value');
    await value.waitFor();
    const code = (await value.textContent()) ?? '';
    await page.getByLabel('Code from the SMS').fill(code === '0000' ? '1111' : '0000');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect
      .poll(() => page.locator('#code-error').textContent())
      .toMatch(/^Wrong code\. Attempts left: \d+\.$/);
    expect(await page.getByLabel('Code from the SMS').getAttribute('aria-invalid')).toBe('true');
  });
});
