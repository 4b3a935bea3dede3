import pino from 'pino';
import { loadConfig, loadDotEnv } from '../config.js';
import { openDatabase } from './client.js';

/** `npm run migrate`: applies pending migrations and exits. */
const env = { ...process.env };
loadDotEnv(env);
const config = loadConfig(env);
const logger = pino({ level: config.LOG_LEVEL });
const database = await openDatabase({
  url: config.DATABASE_URL,
  dataDir: config.DATA_DIR,
  poolSize: 1,
  logger,
});
try {
  await database.migrate();
  logger.info({ database: database.kind }, 'migrations applied');
} finally {
  await database.close();
}
