// Several "processes", each reading its own replica of some tables on one engine, as on a ClickHouse cluster
// where each process reads the replica next to it: a process's own writes are readable to it at once, and to the
// others `lagMs` later (replication). Each replica is a test database of its own holding copies of the named
// tables (CREATE TABLE ... AS, same engine and keys); a replica's view qualifies those table names in its queries,
// writes its inserts into its own replica and, after the lag, into every other one. Other tables pass through
// to the engine's own database, seen alike by all.
import type { ClickHouse } from '../../clickhouse/client.ts';
import { quoteIdent } from '../../clickhouse/client.ts';
import { insertWithClient } from '../../clickhouse/engine/server.ts';
import { dropTestDatabase, type TestEngine } from './engine.ts';

export interface Replicas {
  /** One ClickHouse per replica, to give to one "process". */
  readonly views: readonly ClickHouse[];
  /** Resolves once every insert made so far has reached every replica. */
  settled(): Promise<void>;
  dispose(): Promise<void>;
}

type Client = ClickHouse['client'];
type InsertParams = Parameters<Client['insert']>[0];

export async function replicas(
  engine: TestEngine,
  { count = 2, lagMs, tables }: { count?: number; lagMs: number; tables: readonly string[] },
): Promise<Replicas> {
  const suffix = Math.random()
    .toString(36)
    .slice(2, 8)
    .replace(/[^a-z0-9]/g, '');
  const names = Array.from({ length: count }, (_, i) => `${engine.database}r${suffix}${i}`);
  const base = engine.ch.client;
  for (const db of names) {
    await base.command({ query: `CREATE DATABASE ${quoteIdent(db)}` });
    for (const t of tables) {
      await base.command({
        query: `CREATE TABLE ${quoteIdent(db)}.${quoteIdent(t)} AS ${quoteIdent(engine.database)}.${quoteIdent(t)}`,
      });
    }
  }
  const pattern = new RegExp(`(?<![\\w.\`])\\b(${tables.join('|')})\\b`, 'g');
  const pending = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    pending.add(p);
    void p.finally(() => pending.delete(p)).catch(() => undefined);
  };

  const view = (own: string): ClickHouse => {
    const qualify = (sql: string) => sql.replace(pattern, (t) => `${quoteIdent(own)}.${t}`);
    const into = (db: string, params: InsertParams): InsertParams => ({
      ...params,
      table: `${quoteIdent(db)}.${params.table}`,
    });
    const client = new Proxy(base, {
      get(target, prop) {
        if (prop === 'query' || prop === 'command' || prop === 'exec') {
          const fn = Reflect.get(target, prop, target) as (p: { query: string }) => Promise<unknown>;
          return (params: { query: string }) => fn.call(target, { ...params, query: qualify(params.query) });
        }
        if (prop === 'insert') {
          return async (params: InsertParams) => {
            if (!tables.includes(params.table)) return target.insert(params);
            const mine = await target.insert(into(own, params));
            for (const other of names.filter((n) => n !== own)) {
              track(new Promise((r) => setTimeout(r, lagMs)).then(() => target.insert(into(other, params))));
            }
            return mine;
          };
        }
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? v.bind(target) : v;
      },
    }) as Client;
    // Reads and inserts both through the view's client.
    return {
      ...engine.ch,
      client,
      readClient: client,
      insert: (p) => insertWithClient(client, p),
      close: async () => undefined,
    };
  };

  return {
    views: names.map(view),
    settled: async () => {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
    async dispose() {
      for (const db of names) await dropTestDatabase(engine.ch, db);
    },
  };
}
