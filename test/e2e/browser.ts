import type { AddressInfo } from 'node:net';
import {
  type Browser,
  type BrowserContext,
  chromium,
  type Page,
  type Route,
} from 'playwright-core';
import { expect } from 'vitest';
import type { TestApp } from '../helper.js';
import { viewports } from './page-checks.js';

/*
 * What every browser test sets up: Debian's headless Chromium (never a
 * downloaded one), the app listening on 127.0.0.1, and pages that may reach
 * nothing but it, whose errors are collected.
 */

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Starts the app on a free loopback port; answers its base URL. */
export async function listenOnLoopback(testApp: TestApp): Promise<string> {
  await testApp.app.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(testApp.app.server.address() as AddressInfo).port}`;
}

export type PageOptions = {
  locale?: string;
  viewport?: { width: number; height: number };
  /** Permissions granted to `origin` (the app's base URL). */
  permissions?: { names: string[]; origin: string };
  /**
   * A request for another host: answer it here and return true, or return
   * false to have it aborted and recorded as foreign.
   */
  serveForeign?: (route: Route, url: URL) => Promise<boolean>;
};

/** Pages of one test, watched: requests for other hosts and page errors are collected. */
export class WatchedPages {
  /** Requests for another host, aborted. */
  foreignRequests: string[] = [];
  /** Uncaught exceptions and console errors, CSP violations included. */
  pageErrors: string[] = [];
  private readonly contexts: BrowserContext[] = [];

  constructor(private readonly browser: Browser) {}

  async newPage(options: PageOptions = {}): Promise<Page> {
    const context = await this.browser.newContext({
      viewport: options.viewport ?? viewports.desktop,
      locale: options.locale ?? 'en-US',
      colorScheme: 'light',
      reducedMotion: 'reduce',
    });
    this.contexts.push(context);
    if (options.permissions) {
      await context.grantPermissions(options.permissions.names, {
        origin: options.permissions.origin,
      });
    }
    await context.route('**/*', async (route) => {
      const url = new URL(route.request().url());
      if (url.hostname === '127.0.0.1') return route.continue();
      if (await options.serveForeign?.(route, url)) return;
      this.foreignRequests.push(url.href);
      return route.abort();
    });
    const page = await context.newPage();
    page.on('pageerror', (error) => this.pageErrors.push(`pageerror: ${error.message}`));
    page.on('console', (message) => {
      // Chromium logs every 4xx answer to fetch as "Failed to load resource"; those are the
      // error paths under test, not faults of the page. A CSP violation is one.
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
        this.pageErrors.push(`console: ${message.text()}`);
      }
    });
    return page;
  }

  /** Closes the test's pages, then checks that none reached another host or failed. */
  async closeAndCheck(): Promise<void> {
    for (const context of this.contexts.splice(0)) await context.close();
    const { foreignRequests, pageErrors } = this;
    this.foreignRequests = [];
    this.pageErrors = [];
    expect(foreignRequests).toEqual([]);
    expect(pageErrors).toEqual([]);
  }
}
