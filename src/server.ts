import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { createSendLimiter } from './auth/create-send-limiter.js';
import { ConfigError, loadConfig, loadDotEnv } from './config.js';
import { closeDeps, createDeps, createLogger } from './deps.js';

const env = { ...process.env };
loadDotEnv(env);
let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(env);
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
  throw error;
}

const logger = createLogger(config);
if (config.usesDevelopmentSecret) {
  logger.warn('SECRET_KEY is not set: using a development-only key. Set SECRET_KEY in production.');
}
const deps = await createDeps(config, logger);
await deps.database.migrate();
const app = await buildApp(deps, { limiter: createSendLimiter(deps) });

// SIGTERM/SIGINT: stop accepting connections, finish in-flight requests, then close storage.
closeWithGrace({ delay: 10_000, logger }, async ({ err }) => {
  if (err) logger.error({ err }, 'shutting down after an error');
  await app.close();
  await closeDeps(deps);
});

await app.listen({ port: config.PORT, host: config.HOST });
logger.info(
  {
    database: deps.database.kind,
    store: config.REDIS_URL ? 'redis' : 'memory',
    sms: deps.sms.name,
  },
  `listening on http://${config.HOST}:${config.PORT}`,
);
