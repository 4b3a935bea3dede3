import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { FakeSiteverify } from '../fake-siteverify.js';
import { createTestApp, type TestApp } from '../helper.js';
import { launchChromium, listenOnLoopback, WatchedPages } from './browser.js';
import { checkAccessibility } from './page-checks.js';

/*
 * The web UI with a CAPTCHA configured, in headless Chromium, with no real network: the
 * provider's script is answered by a tiny fake (page.route) whose widget hands out a token at
 * once and a new one on each reset, and the server checks tokens at the local fake siteverify
 * the API tests use. The page may ask another host for that script and for nothing else.
 */

const providers = {
  turnstile: {
    script: 'https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit',
    global: 'turnstile',
    origin: 'https://challenges.cloudflare.com',
    other: 'hcaptcha.com',
  },
  hcaptcha: {
    script: 'https://js.hcaptcha.com/1/api.js?render=explicit',
    global: 'hcaptcha',
    origin: 'https://*.hcaptcha.com',
    other: 'cloudflare',
  },
} as const;

/** A provider's widget API reduced to what the page calls: render() and reset(). */
function fakeProviderScript(global: string): string {
  return `(() => {
  let count = 0;
  const widgets = new Map();
  const issue = (id) => {
    const widget = widgets.get(id);
    widget.tokens += 1;
    const token = id + '-' + widget.tokens;
    setTimeout(() => widget.options.callback(token), 0);
  };
  window.${global} = {
    render(container, options) {
      count += 1;
      const id = 'w' + count;
      const box = document.createElement('div');
      box.dataset.fakeCaptcha = options.sitekey;
      box.style.height = '65px';
      container.append(box);
      widgets.set(id, { options, tokens: 0 });
      issue(id);
      return id;
    },
    reset(id) {
      issue(id);
    },
  };
})();`;
}

let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

describe.each(Object.keys(providers) as (keyof typeof providers)[])(
  'web UI with the %s CAPTCHA',
  { timeout: 60_000 },
  (provider) => {
    const fake = new FakeSiteverify();
    const { script, global, origin, other } = providers[provider];
    let testApp: TestApp;
    let baseUrl: string;
    /** The provider's script, answered by the fake. */
    let scriptRequests: string[] = [];
    let pages: WatchedPages;

    beforeAll(async () => {
      await fake.start();
      testApp = await createTestApp({
        env: {
          CAPTCHA_PROVIDER: provider,
          CAPTCHA_SITE_KEY: 'site-key-1',
          CAPTCHA_SECRET: 'captcha-secret-1',
          CAPTCHA_VERIFY_URL: fake.url,
        },
      });
      baseUrl = await listenOnLoopback(testApp);
      pages = new WatchedPages(browser);
    }, 60_000);

    afterAll(async () => {
      await testApp?.close();
      await fake.stop();
    });

    afterEach(async () => {
      await pages.closeAndCheck();
    });

    function newPage(): Promise<Page> {
      scriptRequests = [];
      return pages.newPage({
        async serveForeign(route, url) {
          if (url.href !== script) return false;
          scriptRequests.push(url.href);
          await route.fulfill({ contentType: 'text/javascript', body: fakeProviderScript(global) });
          return true;
        },
      });
    }

    async function alertText(page: Page, id: string, not = ''): Promise<string> {
      const alert = page.locator(`#${id}`);
      await expect.poll(() => alert.textContent()).not.toBe(not);
      return (await alert.textContent()) ?? '';
    }

    test('the page allows the provider, shows its widget and signs in with its token', async () => {
      const page = await newPage();
      const response = await page.goto(`${baseUrl}/`);
      const csp = response?.headers()['content-security-policy'] ?? '';
      const directive = (name: string) =>
        csp
          .split(';')
          .map((part) => part.trim())
          .find((part) => part.startsWith(`${name} `)) ?? '';
      expect(directive('script-src')).toContain("'self'");
      expect(directive('script-src')).toContain(origin);
      expect(directive('frame-src')).toContain(origin);
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain(other);
      expect(csp).not.toContain('unsafe-inline');
      // The staff page does not show the widget and keeps the strict policy.
      const admin = await fetch(`${baseUrl}/admin/`);
      await admin.arrayBuffer();
      expect(admin.headers.get('content-security-policy')).not.toMatch(/cloudflare|hcaptcha/);

      await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
      const widget = page.locator('#phone-captcha [data-fake-captcha]');
      await widget.waitFor();
      expect(await widget.getAttribute('data-fake-captcha')).toBe('site-key-1');
      await checkAccessibility(page);

      const phoneInput = page.getByLabel('Phone number');
      const getCode = page.getByRole('button', { name: 'Get code' });
      await phoneInput.fill('+7 916 555-02-02');

      // The check is down: the page says to try later, in either language.
      fake.answer = 'error';
      await getCode.click();
      expect(await alertText(page, 'phone-error')).toBe(
        'The CAPTCHA check is unavailable right now. Please try again later.',
      );
      await page.getByRole('button', { name: 'Русский' }).click();
      expect(
        await alertText(
          page,
          'phone-error',
          'The CAPTCHA check is unavailable right now. Please try again later.',
        ),
      ).toBe('Проверка CAPTCHA сейчас недоступна. Попробуйте позже.');

      // A refused token: said in Russian, and the widget is reset for a new one.
      fake.answer = 'failure';
      await page.getByRole('button', { name: 'Получить код' }).click();
      await expect.poll(() => fake.calls.length).toBe(2);
      expect(
        await alertText(
          page,
          'phone-error',
          'Проверка CAPTCHA сейчас недоступна. Попробуйте позже.',
        ),
      ).toBe('Проверка CAPTCHA не пройдена. Пройдите её ещё раз.');
      await page.getByRole('button', { name: 'English' }).click();
      expect(await alertText(page, 'phone-error')).toBe(
        'The CAPTCHA was not accepted. Please solve it again.',
      );

      fake.answer = 'success';
      await getCode.click();
      await page.getByRole('heading', { level: 1, name: 'Enter the code' }).waitFor();
      // Every attempt sent the widget's current token, and each one was new (reset after use).
      expect(fake.calls.map((call) => call.response)).toEqual(['w1-1', 'w1-2', 'w1-3']);
      expect(fake.calls.every((call) => call.secret === 'captcha-secret-1')).toBe(true);

      const code = (await page.locator('#dev-code-value').textContent()) ?? '';
      expect(code).toMatch(/^\d{4,10}$/);
      await page.getByLabel('Code from the SMS').fill(code);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { level: 1, name: 'Your profile' }).waitFor();
      // The provider's script, once, is the only request that left the origin.
      expect(scriptRequests).toEqual([script]);
    });

    test('no code is requested before the widget has given a token', async () => {
      const page = await newPage();
      // The widget never calls back: the page does not send request-code without a token.
      await page.route(script, (route) =>
        route.fulfill({
          contentType: 'text/javascript',
          body: `window.${global} = { render: () => 'w1', reset() {} };`,
        }),
      );
      const calls = fake.calls.length;
      await page.goto(`${baseUrl}/`);
      await page.locator('#phone-captcha').waitFor();
      await page.getByLabel('Phone number').fill('+7 916 555-02-03');
      await page.getByRole('button', { name: 'Get code' }).click();
      expect(await alertText(page, 'phone-error')).toBe('Complete the CAPTCHA, then try again.');
      expect(fake.calls.length).toBe(calls);
    });
  },
);
