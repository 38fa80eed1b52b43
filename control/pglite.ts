// The embedded control store: PGlite (PostgreSQL compiled to WebAssembly) in this process, persisted in a
// directory. One connection: PGlite runs statements one at a time and queues transactions, so every
// transaction is serial here and SKIP LOCKED never has anything to skip.
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';
import type { Db, Row, Sql } from './db.ts';

export async function openEmbeddedDb(dir: string): Promise<Db> {
  if (dir !== 'memory://' && !existsSync(join(dir, 'PG_VERSION'))) await createInWorker(dir);
  const pg = await PGlite.create(dir === 'memory://' ? undefined : dir);
  const run = (q: Pick<PGlite, 'query'>): Sql => ({
    async query<T extends Row>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      return (await q.query<T>(text, params as unknown[])).rows;
    },
  });
  return {
    kind: 'embedded',
    ...run(pg),
    transaction: (fn) => pg.transaction((tx) => fn(run(tx))),
    exec: async (text) => {
      await pg.exec(text);
    },
    close: () => pg.close(),
  };
}

// Runs in a worker thread: PGlite's WebAssembly runs synchronously, and creating a database (initdb) takes
// seconds, which on the main thread would stall every request of a first start.
const CREATE = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.module)
  .then(async ({ PGlite }) => {
    const pg = await PGlite.create(workerData.dir);
    await pg.close();
    parentPort.postMessage({ ok: true });
  })
  .catch((err) => parentPort.postMessage({ ok: false, error: String((err && err.message) || err) }));
`;

/** Creates the database directory off the main thread, under a temporary name renamed when complete. */
async function createInWorker(dir: string): Promise<void> {
  const temp = `${dir}.creating-${process.pid}`;
  // Left by a process stopped mid-creation (the directory has one owner: none of these is in use).
  const parent = dirname(dir);
  for (const f of readdirSync(parent)) {
    if (f.startsWith(`${basename(dir)}.creating-`)) rmSync(join(parent, f), { recursive: true, force: true });
  }
  const module = import.meta.resolve('@electric-sql/pglite');
  const answer = await new Promise<{ ok: boolean; error?: string }>((resolve, reject) => {
    const w = new Worker(CREATE, { eval: true, workerData: { module, dir: temp } });
    w.once('message', (m: { ok: boolean; error?: string }) => {
      resolve(m);
      void w.terminate();
    });
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`the PGlite creation worker exited (${code})`)));
  });
  if (!answer.ok) throw new Error(`creating the control store in ${dir}: ${answer.error}`);
  renameSync(temp, dir);
}
