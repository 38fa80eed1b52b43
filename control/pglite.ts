// The embedded control store: PGlite (PostgreSQL compiled to WebAssembly) in this process, persisted in a
// directory. One connection: PGlite runs statements one at a time and queues transactions, so every
// transaction is serial here and SKIP LOCKED never has anything to skip.
import { PGlite } from '@electric-sql/pglite';
import type { Db, Row, Sql } from './db.ts';

export async function openEmbeddedDb(dir: string): Promise<Db> {
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
