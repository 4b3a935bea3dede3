import { type SQL, sql } from 'drizzle-orm';

/**
 * The rows of a statement run with `db.execute(sql…)`: both drivers (pg and
 * PGlite) answer it with an object whose `rows` are the result.
 */
export function rowsOf<T>(result: unknown): T[] {
  return (result as { rows: T[] }).rows;
}

/**
 * Strings as one text[] parameter. Drizzle spreads an array parameter into a
 * list of parameters, so the array goes as a literal: each element quoted,
 * with its quotes and backslashes escaped.
 */
export function textArray(values: readonly string[]): SQL {
  const elements = values.map((value) => `"${value.replace(/["\\]/g, '\\$&')}"`);
  return sql`${`{${elements.join(',')}}`}::text[]`;
}
