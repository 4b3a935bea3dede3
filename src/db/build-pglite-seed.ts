import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { pgliteSeedFile, wrapPglite } from './client.js';

/**
 * Run by `npm install` (prepare) after compiling: an empty PGlite database
 * with every migration applied, packed for openDatabase to unpack on a first
 * start instead of running initdb.
 */
const client = await PGlite.create();
await wrapPglite(client).migrate();
const seed = await client.dumpDataDir('gzip');
mkdirSync(dirname(pgliteSeedFile), { recursive: true });
writeFileSync(pgliteSeedFile, Buffer.from(await seed.arrayBuffer()));
await client.close();
process.stdout.write(`PGlite seed written to ${pgliteSeedFile}\n`);
