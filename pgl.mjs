import { PGlite } from '@electric-sql/pglite';

let t = performance.now();
const db = await PGlite.create();
await db.query('select 1');
console.log('create', performance.now() - t);
t = performance.now();
const d2 = await PGlite.create();
console.log('create2', performance.now() - t);
await db.exec('create table x(id int primary key, v text)');
t = performance.now();
const dump = await db.dumpDataDir('none');
console.log('dump', performance.now() - t, dump.size);
t = performance.now();
const d3 = await PGlite.create({ loadDataDir: dump });
await d3.query('select * from x');
console.log('load', performance.now() - t);
