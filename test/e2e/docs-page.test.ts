import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../helper.js';
import { launchChromium, listenOnLoopback } from './browser.js';

/*
 * The docs page in a real browser (Debian's headless Chromium): SPEC 9 asks that it renders the
 * OpenAPI document offline, with no request to any other host, and every response described.
 * Every request the page makes is recorded (those to other hosts are also aborted, so nothing
 * leaves the machine even when the test fails), and every console message and CSP violation.
 */

const screenshotDir = fileURLToPath(new URL('../../test-artifacts/screenshots/', import.meta.url));

type OpenApiDocument = {
  paths: Record<string, Record<string, { summary?: string }>>;
};

let browser: Browser;
let testApp: TestApp;
let baseUrl: string;

describe('docs page in a browser', { timeout: 120_000 }, () => {
  beforeAll(async () => {
    await mkdir(screenshotDir, { recursive: true });
    browser = await launchChromium();
    testApp = await createTestApp();
    baseUrl = await listenOnLoopback(testApp);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await testApp?.close();
  });

  test('renders every operation and response, requesting nothing from another origin, under its CSP', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const requested: string[] = [];
    context.on('request', (request) => requested.push(request.url()));
    await context.route('**/*', (route) => {
      const url = new URL(route.request().url());
      return url.origin === baseUrl ? route.continue() : route.abort();
    });
    const page = await context.newPage();
    const consoleMessages: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') {
        consoleMessages.push(`${message.type()}: ${message.text()}`);
      }
    });
    page.on('pageerror', (error) => consoleMessages.push(`pageerror: ${error.message}`));
    // Violations are also events in the page, reported even where the console is quiet.
    await page.addInitScript(() => {
      const seen: string[] = [];
      Object.assign(window, { cspViolations: seen });
      document.addEventListener('securitypolicyviolation', (event) => {
        seen.push(`${event.effectiveDirective} ${event.blockedURI}`);
      });
    });

    const response = await page.goto(`${baseUrl}/api/docs/`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");

    const doc = (await (await fetch(`${baseUrl}/api/openapi.json`)).json()) as OpenApiDocument;
    const summaries = Object.values(doc.paths).flatMap((item) =>
      Object.values(item).map((operation) => operation.summary ?? ''),
    );
    expect(summaries.length).toBeGreaterThanOrEqual(7);
    await page.getByRole('heading', { name: summaries.at(-1) }).waitFor();
    const headings = (await page.locator('h2').allTextContents()).map((text) => text.trim());
    expect(headings).toEqual(expect.arrayContaining(summaries));
    // Each response is a button "<status> <description>"; none says "Default Response".
    const verifyCode = page.locator(
      '[data-section-id="tag/auth/paths/~1api~1auth~1verify-code~1/post"]',
    );
    await verifyCode.getByRole('button', { name: /^429 Rate limited/ }).waitFor();
    await verifyCode.getByRole('button', { name: /^200 Signed in/ }).waitFor();
    expect(await page.getByText('Default Response').count()).toBe(0);

    // The search index is built in a worker (blob: URL), which the CSP must allow.
    await page.getByPlaceholder('Search...').fill('referrals');
    const results = page.locator('[data-role="search:results"] [role="menuitem"]');
    await results.first().waitFor();
    expect(await results.getByText('Page through own referrals, oldest first').count()).toBe(1);

    await page.screenshot({ path: `${screenshotDir}docs.png` });
    // Requests that may still be on their way (the logo is loaded after the first render).
    await page.waitForLoadState('networkidle');

    const foreign = requested.filter((url) => new URL(url).origin !== baseUrl);
    expect(foreign).toEqual([]);
    expect(requested).toEqual(
      expect.arrayContaining([
        `${baseUrl}/api/docs/`,
        `${baseUrl}/api/docs/redoc.standalone.js`,
        `${baseUrl}/api/openapi.json`,
      ]),
    );
    expect(
      await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations),
    ).toEqual([]);
    expect(consoleMessages).toEqual([]);
    await context.close();
  });
});
