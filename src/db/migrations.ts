import { fileURLToPath } from 'node:url';

export const migrationsFolder = fileURLToPath(new URL('../../drizzle', import.meta.url));

/** Migrations recorded by drizzle in this database (0 before the first one). */
export async function countAppliedMigrations(
  run: (sql: string) => Promise<Record<string, unknown>[]>,
): Promise<number> {
  const [table] = await run(
    "select to_regclass('drizzle.__drizzle_migrations') is not null as present",
  );
  if (!table?.present) return 0;
  const [row] = await run('select count(*)::int as n from drizzle.__drizzle_migrations');
  return Number(row?.n ?? 0);
}
