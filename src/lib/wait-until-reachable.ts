import { setTimeout as sleepMs } from 'node:timers/promises';
import type { Logger } from 'pino';

/**
 * A start-up failure the operator can act on. Its message is one line that
 * names the setting and the cause; it is printed as it is, without a stack.
 */
export class StartupError extends Error {
  override name = 'StartupError';
}

/**
 * The time start-up waits for PostgreSQL and Redis, in all. It counts from
 * the first try, so opening an embedded database or loading modules does not
 * spend it.
 */
export class StartupDeadline {
  private atMs: number | undefined;
  constructor(readonly timeoutSeconds: number) {}

  /** Milliseconds left; the first call starts the clock. */
  leftMs(nowMs: number): number {
    this.atMs ??= nowMs + this.timeoutSeconds * 1000;
    return this.atMs - nowMs;
  }
}

/** Something start-up waits for, as an operator knows it. */
export type Dependency = {
  /** The setting that points at it, e.g. DATABASE_URL. */
  variable: string;
  /** e.g. "PostgreSQL at postgres://app@db:5432/app", never with a password. */
  description: string;
  /** Strings masked in error messages (passwords of the URL). */
  secrets: string[];
};

export type WaitOptions = {
  deadline: StartupDeadline;
  logger: Logger;
  nowMs?: () => number;
  sleep?: (ms: number) => Promise<unknown>;
};

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 5000;

/**
 * Runs `attempt` until it succeeds, retrying with back-off (0.5 s doubling to
 * 5 s) until the deadline, and logs each failed try. A service started before
 * its database (Docker Compose, Kubernetes) comes up when the database does.
 * Past the deadline it throws a StartupError naming the setting and the last
 * cause. Every error is retried, even one that looks permanent (a database
 * not created yet, a password being rotated): the deadline bounds them all.
 */
export async function waitUntilReachable<T>(
  dependency: Dependency,
  attempt: () => Promise<T>,
  options: WaitOptions,
): Promise<T> {
  const nowMs = options.nowMs ?? Date.now;
  const sleep = options.sleep ?? sleepMs;
  const { variable, description } = dependency;
  options.deadline.leftMs(nowMs());
  for (let tries = 1, retryMs = FIRST_RETRY_MS; ; tries++) {
    try {
      const result = await attempt();
      if (tries > 1) {
        options.logger.info({ variable, tries }, `${description} (${variable}) is reachable`);
      }
      return result;
    } catch (error) {
      const cause = describeCause(error, dependency.secrets);
      const leftMs = options.deadline.leftMs(nowMs());
      if (leftMs <= 0) {
        throw new StartupError(
          `${variable}: ${description} is not reachable within STARTUP_TIMEOUT_SECONDS=${options.deadline.timeoutSeconds} (${tries} ${tries === 1 ? 'try' : 'tries'}): ${cause}`,
        );
      }
      const waitMs = Math.min(retryMs, leftMs);
      options.logger.warn(
        { variable, try: tries, retryInMs: waitMs, cause },
        `${description} (${variable}) is not reachable yet: ${cause}; retrying in ${(waitMs / 1000).toFixed(1)} s`,
      );
      await sleep(waitMs);
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
    }
  }
}

/** An error as one line: the messages of an AggregateError (one per address tried), secrets masked. */
export function describeCause(error: unknown, secrets: readonly string[] = []): string {
  let text: string;
  if (error instanceof AggregateError && error.errors.length > 0) {
    text = [...new Set(error.errors.map((inner) => describeCause(inner)))].join('; ');
  } else if (error instanceof Error) {
    text = error.message || (error as NodeJS.ErrnoException).code || error.name;
  } else {
    text = String(error);
  }
  for (const secret of secrets) {
    if (secret) text = text.replaceAll(secret, '***');
  }
  return text.replace(/\s*\n\s*/g, ' ');
}

/**
 * A URL as it may be shown: scheme, user, host and path. The password
 * becomes *** and the query string (which may carry one) is left out.
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const password = parsed.password ? ':***' : '';
    const user = parsed.username || password ? `${parsed.username}${password}@` : '';
    const path = parsed.pathname === '/' ? '' : parsed.pathname;
    return `${parsed.protocol}//${user}${parsed.host}${path}`;
  } catch {
    return '(an invalid URL)';
  }
}

/** The passwords a URL carries, raw and decoded, to mask wherever they might be echoed. */
export function secretsOf(url: string): string[] {
  try {
    const parsed = new URL(url);
    const candidates = [
      parsed.password,
      decodeURIComponent(parsed.password),
      ...parsed.searchParams.getAll('password'),
    ];
    return [...new Set(candidates.filter((secret) => secret.length > 0))];
  } catch {
    return [];
  }
}
