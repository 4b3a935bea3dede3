import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../helper.js';
import { launchChromium, listenOnLoopback, WatchedPages } from './browser.js';
import { checkAccessibility, layoutProblems, viewports } from './page-checks.js';

/*
 * The web UI end to end: the real app (PGlite + in-process store) listening on 127.0.0.1, driven
 * by Debian's headless Chromium through playwright-core. Elements are found by their role and
 * accessible name, so every step also checks that labels and names exist. Screenshots of each
 * page at phone and desktop width go to test-artifacts/screenshots/ (gitignored).
 */

const screenshotDir = fileURLToPath(new URL('../../test-artifacts/screenshots/', import.meta.url));
const webDir = new URL('../../web/', import.meta.url);

/** A small Android phone, the narrowest width the page is made for. */
const narrowPhone = { width: 360, height: 640 };

const TOKEN_KEY = 'referral.token';

let browser: Browser;
let testApp: TestApp;
let baseUrl: string;
let pages: WatchedPages;

function newPage(
  options: { locale?: string; viewport?: { width: number; height: number } } = {},
): Promise<Page> {
  return pages.newPage({
    ...options,
    permissions: { names: ['clipboard-read', 'clipboard-write'], origin: baseUrl },
  });
}

/** Saves the current page at phone and desktop width. */
async function snap(page: Page, name: string): Promise<void> {
  const original = page.viewportSize();
  for (const [label, size] of Object.entries(viewports)) {
    await page.setViewportSize(size);
    await page.screenshot({ path: `${screenshotDir}${name}-${label}.png`, fullPage: true });
  }
  if (original) await page.setViewportSize(original);
}

async function devCode(page: Page): Promise<string> {
  const value = page.locator('#dev-code-value');
  await value.waitFor();
  const code = (await value.textContent()) ?? '';
  expect(code).toMatch(/^\d{4,10}$/);
  return code;
}

/** Signs in through the English UI; the page must be showing the phone step. */
async function signIn(page: Page, phone: string): Promise<void> {
  await page.getByLabel('Phone number').fill(phone);
  await page.getByRole('button', { name: 'Get code' }).click();
  const code = await devCode(page);
  await page.getByLabel('Code from the SMS').fill(code);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Your profile' }).waitFor();
}

async function alertText(page: Page, id: string): Promise<string> {
  const alert = page.locator(`#${id}`);
  await expect.poll(() => alert.textContent()).not.toBe('');
  expect(await alert.getAttribute('role')).toBe('alert');
  return (await alert.textContent()) ?? '';
}

async function statusText(page: Page): Promise<string> {
  const status = page.getByRole('status');
  await expect.poll(() => status.textContent()).not.toBe('');
  return (await status.textContent()) ?? '';
}

/** Signs in through the API alone, as another client would. */
async function apiSignIn(phone: string): Promise<{ token: string; inviteCode: string }> {
  const sent = await post<{ dev_code: string }>('/api/auth/request-code/', {
    phone_number: phone,
  });
  expect(sent.status).toBe(200);
  const verified = await post<{ token: string; user: { invite_code: string } }>(
    '/api/auth/verify-code/',
    {
      phone_number: phone,
      code: sent.body.dev_code,
    },
  );
  expect(verified.status).toBe(200);
  return { token: verified.body.token, inviteCode: verified.body.user.invite_code };
}

async function post<T>(
  path: string,
  body: Record<string, unknown>,
  token?: string,
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Token ${token}` } : {}),
    },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as T };
}

async function setStoredToken(page: Page, token: string | null): Promise<void> {
  await page.evaluate(({ key, value }) => localStorage.setItem(key, value), {
    key: TOKEN_KEY,
    value: token ?? '',
  });
}

async function storedToken(page: Page): Promise<string | null> {
  return page.evaluate((key) => localStorage.getItem(key), TOKEN_KEY);
}

describe('web UI', { timeout: 60_000 }, () => {
  beforeAll(async () => {
    await mkdir(screenshotDir, { recursive: true });
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
  });

  beforeEach(async () => {
    testApp = await createTestApp();
    baseUrl = await listenOnLoopback(testApp);
    pages = new WatchedPages(browser);
  }, 60_000);

  afterEach(async () => {
    await pages.closeAndCheck();
    await testApp?.close();
  }, 60_000);

  test('serves the page with a strict CSP and keeps its routes out of OpenAPI', async () => {
    const page = await newPage();
    const response = await page.goto(`${baseUrl}/`);
    expect(response?.status()).toBe(200);
    const csp = response?.headers()['content-security-policy'] ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain("frame-ancestors 'none'");
    // No CAPTCHA configured: no provider's host, no frames (web-captcha.test.ts has the rest).
    expect(csp).not.toMatch(/cloudflare|hcaptcha|https:|frame-src/);
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    expect(await page.locator('#phone-captcha').isHidden()).toBe(true);

    const script = await fetch(`${baseUrl}/assets/app.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/javascript/);
    // Every body is read: one left unread holds its connection open, and the app's close with it.
    await script.arrayBuffer();
    // libphonenumber-js's browser bundle, from node_modules, and nothing else of that folder.
    const phoneLibrary = await fetch(`${baseUrl}/assets/vendor/libphonenumber-min.js`);
    expect(phoneLibrary.status).toBe(200);
    expect(phoneLibrary.headers.get('content-type')).toMatch(/javascript/);
    expect(phoneLibrary.headers.get('x-content-type-options')).toBe('nosniff');
    await phoneLibrary.arrayBuffer();
    const other = await fetch(`${baseUrl}/assets/vendor/libphonenumber-max.js`);
    expect(other.status).toBe(404);
    await other.arrayBuffer();
    const openapi = await fetch(`${baseUrl}/api/openapi.json`);
    expect(openapi.status).toBe(200);
    const paths = Object.keys(((await openapi.json()) as { paths?: object }).paths ?? {});
    expect(paths).toContain('/api/profile/');
    expect(paths.filter((path) => path === '/' || path.startsWith('/assets'))).toEqual([]);
  });

  test('signs in by phone and code, explains a wrong code, and survives a reload', async () => {
    const page = await newPage();
    await page.goto(`${baseUrl}/`);
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    expect(await page.title()).toBe('Sign in · Invites');
    const phoneInput = page.getByLabel('Phone number');
    expect(await phoneInput.getAttribute('type')).toBe('tel');
    expect(await phoneInput.getAttribute('inputmode')).toBe('tel');
    expect(await phoneInput.getAttribute('autocomplete')).toBe('tel');
    await checkAccessibility(page);
    await snap(page, 'sign-in');

    await page.getByRole('button', { name: 'Get code' }).click();
    expect(await alertText(page, 'phone-error')).toBe('Enter your phone number.');
    expect(await phoneInput.getAttribute('aria-invalid')).toBe('true');

    await phoneInput.fill('12');
    await page.getByRole('button', { name: 'Get code' }).click();
    expect(await alertText(page, 'phone-error')).toBe(
      'This phone number is not valid or not supported.',
    );

    // Typed with hyphens; shown in libphonenumber's international format, as everywhere.
    await phoneInput.fill('+7 916 555-01-01');
    await page.getByRole('button', { name: 'Get code' }).click();
    await page.getByRole('heading', { level: 1, name: 'Enter the code' }).waitFor();
    expect(await page.locator('#code-lead').textContent()).toBe(
      'We sent a code to +7 916 555 01 01.',
    );
    const codeInput = page.getByLabel('Code from the SMS');
    expect(await codeInput.evaluate((input) => input === document.activeElement)).toBe(true);
    expect(await codeInput.getAttribute('inputmode')).toBe('numeric');
    expect(await codeInput.getAttribute('autocomplete')).toBe('one-time-code');
    const code = await devCode(page);
    expect(await page.locator('#dev-code').textContent()).toContain('Development mode');
    // The resend button waits out the cooldown, with a visible countdown.
    expect(await page.locator('#resend-timer').textContent()).toMatch(
      /^You can request a new code in \d+:\d\d$/,
    );
    expect(await page.getByRole('button', { name: 'Send a new code' }).isVisible()).toBe(false);
    await checkAccessibility(page);
    await snap(page, 'code');

    const wrong = `${(Number(code[0]) + 1) % 10}${code.slice(1)}`;
    await codeInput.fill(wrong);
    await page.getByRole('button', { name: 'Sign in' }).click();
    expect(await alertText(page, 'code-error')).toMatch(/^Wrong code\. Attempts left: \d+\.$/);
    expect(await codeInput.getAttribute('aria-invalid')).toBe('true');
    await snap(page, 'code-wrong');

    await codeInput.fill(code);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Your profile' }).waitFor();
    expect(await statusText(page)).toBe('Welcome! Your account has been created.');
    // The API answers E.164 (+79165550101); a person reads the international format.
    expect(await page.locator('#profile-phone').textContent()).toBe(
      'Signed in as +7 916 555 01 01',
    );
    const inviteCode = (await page.locator('#invite-code').textContent()) ?? '';
    expect(inviteCode).toMatch(/^[A-Z0-9]{6}$/);
    expect(await page.getByLabel('Share link').inputValue()).toBe(
      `${baseUrl}/?invite=${inviteCode}`,
    );
    await expect.poll(() => page.locator('#referrals-empty').isVisible()).toBe(true);
    expect(await page.locator('#referrals-count').textContent()).toBe('Total: 0');
    expect(await storedToken(page)).toMatch(/.{20,}/);
    // The page made a device id, keeps it, and signed in with it (a fraud signal).
    const deviceId = await page.evaluate(() => localStorage.getItem('referral.deviceId'));
    expect(deviceId).toMatch(/^[0-9a-f]{32}$/);
    const signups = await testApp.deps.database.db.execute(
      sql`select signup_device_id from users where phone_number = '+79165550101'`,
    );
    expect((signups as unknown as { rows: unknown[] }).rows).toEqual([
      { signup_device_id: deviceId },
    ]);

    await page.getByRole('button', { name: 'Copy link' }).click();
    // The welcome is still shown until the clipboard answers: wait for the new status.
    await expect.poll(() => page.getByRole('status').textContent()).toBe('Link copied.');
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(
      `${baseUrl}/?invite=${inviteCode}`,
    );

    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Your profile' }).waitFor();
    expect(await page.locator('#invite-code').textContent()).toBe(inviteCode);
  });

  test('a second user activates through the share link and the referrer sees them', async () => {
    const referrer = await newPage();
    await referrer.goto(`${baseUrl}/`);
    await signIn(referrer, '+79165550201');
    const inviteCode = (await referrer.locator('#invite-code').textContent()) ?? '';
    const shareLink = await referrer.getByLabel('Share link').inputValue();

    // Refused activations are explained: a malformed code, then the user's own code.
    const referrerInput = referrer.getByLabel('Friend’s invite code');
    await referrerInput.fill('abc');
    await referrer.getByRole('button', { name: 'Activate' }).click();
    expect(await alertText(referrer, 'activate-error')).toBe(
      'An invite code is 6 letters A–Z and digits.',
    );
    await referrerInput.fill(inviteCode.toLowerCase());
    await referrer.getByRole('button', { name: 'Activate' }).click();
    expect(await alertText(referrer, 'activate-error')).toBe(
      'You cannot activate your own invite code.',
    );
    expect(await referrerInput.getAttribute('aria-invalid')).toBe('true');
    await snap(referrer, 'profile-activation-refused');

    const referee = await newPage();
    await referee.goto(shareLink);
    await referee.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    expect(await referee.locator('#phone-invited').textContent()).toBe(
      `You were invited with code ${inviteCode}. Sign in to activate it.`,
    );
    // The code is remembered, and the address bar no longer shows it.
    expect(referee.url()).toBe(`${baseUrl}/`);
    await snap(referee, 'sign-in-invited');

    await signIn(referee, '+79165550202');
    const refereeInput = referee.getByLabel('Friend’s invite code');
    expect(await refereeInput.inputValue()).toBe(inviteCode);
    expect(await referee.locator('#activate-from-link').textContent()).toBe(
      `Code ${inviteCode} was filled in from your invite link.`,
    );
    await referee.getByRole('button', { name: 'Activate' }).click();
    await referee.getByRole('heading', { name: 'Activated invite code' }).waitFor();
    expect(await statusText(referee)).toBe(`Invite code ${inviteCode} activated.`);
    expect(await referee.locator('#activated-code').textContent()).toBe(inviteCode);
    expect(await refereeInput.isVisible()).toBe(false);

    await referrer.reload();
    await referrer.getByRole('heading', { level: 1, name: 'Your profile' }).waitFor();
    await expect.poll(() => referrer.locator('#referrals-count').textContent()).toBe('Total: 1');
    const items = referrer.getByRole('list', { name: 'Your referrals' }).getByRole('listitem');
    expect(await items.count()).toBe(1);
    expect(await items.first().locator('.phone').textContent()).toBe('+7 916 555 02 02');
    expect(await items.first().locator('time').getAttribute('datetime')).toMatch(
      /^\d{4}-\d\d-\d\d/,
    );
    await checkAccessibility(referrer);
    await snap(referrer, 'profile');

    // The referee's code would close a cycle: refused with its own explanation.
    const refereeCode = (await referee.locator('#invite-code').textContent()) ?? '';
    await referrerInput.fill(refereeCode);
    await referrer.getByRole('button', { name: 'Activate' }).click();
    expect(await alertText(referrer, 'activate-error')).toBe(
      'This code belongs to someone you invited, so it cannot be activated.',
    );
  });

  test('pages through referrals with "Load more"', async () => {
    const { token, inviteCode } = await apiSignIn('+79165550300');
    /** As the list shows them: +79165550301 is `+7 916 555 03 01`. */
    const refereePhones: string[] = [];
    for (let i = 1; i <= 11; i += 1) {
      const lastDigits = String(i).padStart(2, '0');
      const referee = await apiSignIn(`+791655503${lastDigits}`);
      const activated = await post('/api/profile/', { invite_code: inviteCode }, referee.token);
      expect(activated.status).toBe(200);
      refereePhones.push(`+7 916 555 03 ${lastDigits}`);
    }

    const page = await newPage();
    await page.goto(`${baseUrl}/`);
    await setStoredToken(page, token);
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Your profile' }).waitFor();
    const items = page.getByRole('list', { name: 'Your referrals' }).getByRole('listitem');
    await expect.poll(() => items.count()).toBe(10);
    expect(await page.locator('#referrals-count').textContent()).toBe('Total: 11');
    expect(await page.locator('#referrals-shown').textContent()).toBe('Showing 10 of 11');
    expect(await items.locator('.phone').allTextContents()).toEqual(refereePhones.slice(0, 10));

    await page.getByRole('button', { name: 'Load more' }).click();
    await expect.poll(() => items.count()).toBe(11);
    expect(await items.locator('.phone').allTextContents()).toEqual(refereePhones);
    expect(await page.locator('#referrals-shown').textContent()).toBe('Showing 11 of 11');
    expect(await page.getByRole('button', { name: 'Load more' }).isVisible()).toBe(false);
    // Keyboard users continue at the first newly loaded referral.
    expect(await items.nth(10).evaluate((item) => item === document.activeElement)).toBe(true);
  });

  test('takes the language from the browser, switches it, and remembers the choice', async () => {
    const page = await newPage({ locale: 'ru-RU' });
    await page.goto(`${baseUrl}/`);
    await page.getByRole('heading', { level: 1, name: 'Вход' }).waitFor();
    expect(await page.evaluate(() => document.documentElement.lang)).toBe('ru');
    expect(await page.title()).toBe('Вход · Приглашения');
    const russian = page.getByRole('button', { name: 'Русский' });
    const english = page.getByRole('button', { name: 'English' });
    expect(await russian.getAttribute('aria-pressed')).toBe('true');
    await snap(page, 'sign-in-ru');

    // A message already on screen is translated too.
    await page.getByRole('button', { name: 'Получить код' }).click();
    expect(await alertText(page, 'phone-error')).toBe('Введите номер телефона.');
    await english.click();
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    expect(await page.locator('#phone-error').textContent()).toBe('Enter your phone number.');
    expect(await page.evaluate(() => document.documentElement.lang)).toBe('en');
    expect(await english.getAttribute('aria-pressed')).toBe('true');
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();

    await russian.click();
    await page.getByLabel('Номер телефона').fill('+79165550401');
    await page.getByRole('button', { name: 'Получить код' }).click();
    const code = await devCode(page);
    await page.getByLabel('Код из СМС').fill(code);
    await page.getByRole('button', { name: 'Войти' }).click();
    await page.getByRole('heading', { level: 1, name: 'Ваш профиль' }).waitFor();
    expect(await page.locator('#profile-phone').textContent()).toBe(
      'Вы вошли как +7 916 555 04 01',
    );
    await expect.poll(() => page.locator('#referrals-count').textContent()).toBe('Всего: 0');
    await checkAccessibility(page);
    await snap(page, 'profile-ru');
  });

  test('works with the keyboard alone, with visible focus', async () => {
    const page = await newPage();
    await page.goto(`${baseUrl}/`);
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    const focused = () =>
      page.evaluate(() => {
        const active = document.activeElement as HTMLElement;
        const style = getComputedStyle(active);
        return {
          id: active.id || active.dataset.lang || active.className,
          outline: `${style.outlineStyle} ${style.outlineWidth}`,
        };
      });
    const order: string[] = [];
    for (let i = 0; i < 4; i += 1) {
      await page.keyboard.press('Tab');
      const { id, outline } = await focused();
      order.push(id);
      expect(outline, id).toBe('solid 3px');
    }
    expect(order).toEqual(['skip-link', 'en', 'ru', 'phone-input']);

    await page.keyboard.type('+79165550501');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Enter the code' }).waitFor();
    // Typed without spaces, shown the way it is shown everywhere else.
    expect(await page.locator('#code-lead').textContent()).toBe(
      'We sent a code to +7 916 555 05 01.',
    );
    expect((await focused()).id).toBe('code-input');
    await page.keyboard.type(await devCode(page));
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Your profile' }).waitFor();
    expect((await focused()).id).toBe('profile-heading');
    await page.keyboard.press('Tab');
    expect((await focused()).id).toBe('logout-btn');
  });

  test('sign-out revokes the token; a dead token returns to sign-in', async () => {
    const page = await newPage();
    await page.goto(`${baseUrl}/`);
    await signIn(page, '+79165550601');
    const token = await storedToken(page);
    expect(token).not.toBeNull();

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    expect(await statusText(page)).toBe('You have signed out.');
    expect(await storedToken(page)).toBeNull();
    expect(await page.getByLabel('Phone number').inputValue()).toBe('');
    const revoked = await fetch(`${baseUrl}/api/profile/`, {
      headers: { authorization: `Token ${token}` },
    });
    expect(revoked.status).toBe(401);
    await snap(page, 'signed-out');
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();

    // A token the server no longer accepts (here the revoked one) sends the user to sign-in.
    await setStoredToken(page, token);
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    expect(await statusText(page)).toBe('Your session has ended. Please sign in again.');
    expect(await storedToken(page)).toBeNull();
  });

  test('going back to the phone step and asking again too soon shows the wait', async () => {
    const page = await newPage();
    await page.goto(`${baseUrl}/`);
    await page.getByLabel('Phone number').fill('+79165550701');
    await page.getByRole('button', { name: 'Get code' }).click();
    await devCode(page);
    const timer = page.locator('#resend-timer');
    const first = await timer.textContent();
    await expect.poll(() => timer.textContent(), { timeout: 5_000 }).not.toBe(first);

    // A reload keeps the code step.
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Enter the code' }).waitFor();
    await page.getByRole('button', { name: 'Change phone number' }).click();
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    expect(await page.getByLabel('Phone number').inputValue()).toBe('+79165550701');
    await page.getByRole('button', { name: 'Get code' }).click();
    expect(await alertText(page, 'phone-error')).toMatch(
      /^Too many requests\. Try again in \d+:\d\d\.$/,
    );
  });
  test('shows that the code is being sent until the server answers', async () => {
    const page = await newPage();
    await page.goto(`${baseUrl}/`);
    // The answer is held back until the test has looked at the button (no timing involved).
    let release: () => void = () => {};
    const answered = new Promise<void>((resolve) => {
      release = resolve;
    });
    let sent = 0;
    await page.route('**/api/auth/request-code/', async (route) => {
      sent += 1;
      await answered;
      await route.continue();
    });

    const phoneInput = page.getByLabel('Phone number');
    await phoneInput.fill('+79165550801');
    await page.getByRole('button', { name: 'Get code' }).click();
    const sending = page.getByRole('button', { name: 'Sending…' });
    await sending.waitFor();
    expect(await sending.isDisabled()).toBe(true);
    expect(await sending.getAttribute('aria-disabled')).toBe('true');
    // A spinner beside the label.
    expect(
      await sending.evaluate((button) => getComputedStyle(button, '::before').borderTopStyle),
    ).not.toBe('none');
    await snap(page, 'sign-in-sending');
    // Enter again while it is sending does not send a second code.
    await phoneInput.press('Enter');
    expect(await sending.isVisible()).toBe(true);

    release();
    await page.getByRole('heading', { level: 1, name: 'Enter the code' }).waitFor();
    expect(sent).toBe(1);
    await devCode(page);
    // Back at the phone step the button is itself again.
    await page.getByRole('button', { name: 'Change phone number' }).click();
    const getCode = page.getByRole('button', { name: 'Get code' });
    await getCode.waitFor();
    expect(await getCode.getAttribute('aria-disabled')).toBeNull();
  });

  test('with the API unreachable, shows the error alone, and recovers on retry', async () => {
    const { token } = await apiSignIn('+79165550901');
    const page = await newPage();
    await page.goto(`${baseUrl}/`);
    await setStoredToken(page, token);
    await page.route('**/api/**', (route) => route.abort('connectionrefused'));
    await page.reload();

    expect(await alertText(page, 'loading-error')).toBe(
      'No connection to the server. Check your network and try again.',
    );
    expect(await page.getByText('Loading…').isVisible()).toBe(false);
    expect(await page.getByRole('button', { name: 'Try again' }).isVisible()).toBe(true);
    expect(await page.title()).toBe('Could not load · Invites');
    await snap(page, 'api-unreachable');

    await page.unroute('**/api/**');
    await page.getByRole('button', { name: 'Try again' }).click();
    await page.getByRole('heading', { level: 1, name: 'Your profile' }).waitFor();
    expect(await page.locator('#profile-phone').textContent()).toBe(
      'Signed in as +7 916 555 09 01',
    );
  });

  test('shows the whole share link on a 360 px wide phone', async () => {
    const page = await newPage({ viewport: narrowPhone });
    await page.goto(`${baseUrl}/`);
    await signIn(page, '+79165551001');
    const inviteCode = (await page.locator('#invite-code').textContent()) ?? '';
    const link = page.getByLabel('Share link');
    expect(await link.inputValue()).toBe(`${baseUrl}/?invite=${inviteCode}`);
    // Nothing of it is scrolled out of view, sideways or below, and the field is on screen.
    const fit = await link.evaluate((field) => ({
      width: field.scrollWidth - field.clientWidth,
      height: field.scrollHeight - field.clientHeight,
      right: field.getBoundingClientRect().right,
    }));
    expect(fit.width).toBeLessThanOrEqual(0);
    expect(fit.height).toBeLessThanOrEqual(0);
    expect(fit.right).toBeLessThanOrEqual(narrowPhone.width);
    expect(await link.getAttribute('readonly')).not.toBeNull();
    expect(await page.getByRole('button', { name: 'Copy link' }).isVisible()).toBe(true);
    expect(await layoutProblems(page)).toEqual([]);
    await page.screenshot({ path: `${screenshotDir}profile-360.png`, fullPage: true });
  });
});

test('the UI has one dictionary per language, with the same keys and placeholders', async () => {
  const load = async (lang: string) =>
    ((await import(new URL(`i18n/${lang}.js`, webDir).href)) as Record<string, object>)[lang];
  const en = (await load('en')) as Record<string, string>;
  const ru = (await load('ru')) as Record<string, string>;
  expect(Object.keys(ru).sort()).toEqual(Object.keys(en).sort());
  for (const dictionary of [en, ru]) {
    for (const [key, text] of Object.entries(dictionary)) {
      expect(text.trim(), key).not.toBe('');
      expect(text.match(/\{\w+\}/g) ?? [], key).toEqual(en[key]?.match(/\{\w+\}/g) ?? []);
    }
  }
});
