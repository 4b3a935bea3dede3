import { type SQL, sql } from 'drizzle-orm';

/**
 * The rows of a statement run with `db.execute(sql…)`: both drivers (pg and
 * PGlite) answer it with an object whose `rows` are the result.
 */
export function rowsOf<T>(result: unknown): T[] {
  return (result as { rows: T[] }).rows;
}

/**
 * Strings as one text[] parameter. Drizzle spreads an array in a template
 * into a list of parameters; `sql.param` keeps it one value, which the driver
 * (pg or PGlite) writes as an array.
 */
export function textArray(values: readonly string[]): SQL {
  return sql`${sql.param([...values])}::text[]`;
}
