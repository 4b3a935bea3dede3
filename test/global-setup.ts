import pg from 'pg';
import pino from 'pino';
import { openDatabase } from '../src/db/client.js';
import { TEMPLATE_SUFFIX } from './helper.js';

/** Builds the migrated template database that each PostgreSQL test app copies. */
export default async function setup(): Promise<() => Promise<void>> {
  const baseUrl = process.env.TEST_DATABASE_URL;
  if (!baseUrl || !process.env.TEST_REDIS_URL) return async () => {};
  const template = `${new URL(baseUrl).pathname.slice(1)}${TEMPLATE_SUFFIX}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`drop database if exists "${template}" with (force)`);
  await admin.query(`create database "${template}"`);
  const url = new URL(baseUrl);
  url.pathname = `/${template}`;
  const database = await openDatabase({
    url: url.toString(),
    dataDir: '',
    poolSize: 1,
    logger: pino({ level: 'silent' }),
  });
  await database.migrate();
  await database.close();
  return async () => {
    await admin.query(`drop database if exists "${template}" with (force)`);
    await admin.end();
  };
}
