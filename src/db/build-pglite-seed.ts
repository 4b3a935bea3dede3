import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { pgliteSeedDir, pgliteSeedFile, pgliteStartParams, wrapPglite } from './pglite.js';

/**
 * Run by `npm install` (prepare) after compiling: an empty PGlite database
 * with every migration applied, for openDatabase to copy on a first start
 * instead of running initdb. Written twice: as a data directory (copied into
 * a new DATA_DIR) and packed (loaded by in-memory databases).
 */
const building = `${pgliteSeedDir}.building`;
rmSync(building, { recursive: true, force: true });
mkdirSync(dirname(building), { recursive: true });
const client = await PGlite.create(building, { startParams: pgliteStartParams });
await wrapPglite(client).migrate();
const packed = await client.dumpDataDir('gzip');
writeFileSync(pgliteSeedFile, Buffer.from(await packed.arrayBuffer()));
await client.close();
rmSync(pgliteSeedDir, { recursive: true, force: true });
renameSync(building, pgliteSeedDir);
process.stdout.write(`PGlite seed written to ${pgliteSeedDir} and ${pgliteSeedFile}\n`);
