import { ConfigError, loadConfig, loadDotEnv } from '../config.js';
import { createLogger, migrateDatabase, openDatabaseWhenReachable } from '../deps.js';
import { StartupError } from '../lib/wait-until-reachable.js';
import { DataDirLockError } from './data-dir-lock.js';

/**
 * `npm run migrate`: applies pending migrations and exits. It waits for
 * PostgreSQL as the service does, and refuses a DATA_DIR that a running
 * service holds.
 */
const env = { ...process.env };
loadDotEnv(env);
try {
  const config = loadConfig(env);
  const logger = createLogger(config);
  const database = await openDatabaseWhenReachable({ ...config, DATABASE_POOL_SIZE: 1 }, logger);
  try {
    const applied = await migrateDatabase(database, config);
    logger.info(
      { database: database.kind, applied },
      applied === 0
        ? 'the schema is already up to date: no migration to apply'
        : `applied ${applied} migration${applied === 1 ? '' : 's'}`,
    );
  } finally {
    await database.close();
  }
} catch (error) {
  if (
    error instanceof ConfigError ||
    error instanceof StartupError ||
    error instanceof DataDirLockError
  ) {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
  throw error;
}
