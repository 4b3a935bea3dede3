/** SQLSTATE of an error thrown by node-postgres or PGlite, looking through Drizzle's wrapper. */
export function sqlState(error: unknown): string | undefined {
  for (
    let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0;
    e && depth < 5;
    depth++
  ) {
    if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return e.code;
    e = e.cause as typeof e;
  }
  return undefined;
}

export function constraintName(error: unknown): string | undefined {
  for (
    let e = error as { constraint?: unknown; cause?: unknown } | undefined, depth = 0;
    e && depth < 5;
    depth++
  ) {
    if (typeof e.constraint === 'string') return e.constraint;
    e = e.cause as typeof e;
  }
  return undefined;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

type ErrorLike = Record<string, unknown> | undefined;

/** Walks an error and its causes (Drizzle wraps the driver's error). */
function someInChain(error: unknown, test: (code: string, message: string) => boolean): boolean {
  for (let e = error as ErrorLike, depth = 0; e && depth < 5; depth++) {
    const code = typeof e.code === 'string' ? e.code : '';
    const message = typeof e.message === 'string' ? e.message : '';
    if (test(code, message)) return true;
    e = e.cause as ErrorLike;
  }
  return false;
}

/**
 * True when the connection a query ran on cannot be used again: it dropped,
 * or it took a query and gave no answer in time (node-postgres's
 * query_timeout), so what comes back on it later no longer matches what was
 * asked. 08xxx connection exception; 57P01-03 shutdown or cannot connect now;
 * 25P03 the server ended a session left idle in a transaction.
 */
export function isConnectionLost(error: unknown): boolean {
  return someInChain(
    error,
    (code, message) =>
      NETWORK_CODES.has(code) ||
      /^(08...|57P0[1-3]|25P03)$/.test(code) ||
      /Connection terminated|Client has encountered a connection error|Query read timeout|connection is closed/i.test(
        message,
      ),
  );
}

/**
 * True when the database could not be reached, dropped the connection, or
 * did not answer in time, as opposed to refusing a query: those errors become
 * a 503, never a 500. Besides a lost connection: no connection free in time,
 * 53300 too many connections, 57014 a statement over statement_timeout, 55P03
 * a lock not granted within lock_timeout, and a query sent on a connection
 * already closed for one of these reasons.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  return (
    isConnectionLost(error) ||
    someInChain(
      error,
      (code, message) =>
        /^(53300|57014|55P03)$/.test(code) ||
        /timeout exceeded when trying to connect|is not queryable|PGlite is closed/i.test(message),
    )
  );
}
