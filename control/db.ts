// The one small interface the control plane speaks: parameterized SQL and transactions, implemented once for
// embedded PGlite (control/pglite.ts) and once for a PostgreSQL server (control/server.ts). Only the chosen
// driver is loaded; the SQL above this line is the same for both.

/** A row as the drivers return it: bigint may arrive as number (PGlite) or string (pg), so mappers use Number(). */
export type Row = Record<string, unknown>;

export interface Sql {
  /** Runs one statement with `$1..$n` parameters; returns its rows (RETURNING rows for writes). */
  query<T extends Row = Row>(text: string, params?: readonly unknown[]): Promise<T[]>;
}

export interface Db extends Sql {
  /** 'embedded' (PGlite under DATA_DIR) or 'server' (DATABASE_URL). */
  readonly kind: 'embedded' | 'server';
  /** Runs `fn` in one transaction on one connection: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  /** Runs several statements without parameters (migrations). */
  exec(text: string): Promise<void>;
  close(): Promise<void>;
}

export interface OpenDbOptions {
  /** A postgres:// URL (DATABASE_URL); undefined: PGlite in `dir`. */
  url: string | undefined;
  /** The embedded store's directory (DATA_DIR/control); 'memory://' for a store that lives in memory. */
  dir: string;
  /** A schema to work in on a server (tests: one per test); created if missing. Default: the user's default. */
  schema?: string;
  /** Connections of the pool on a server (default 10). */
  poolSize?: number;
}

/** Opens the control store's connection (no migrations: see control/migrate.ts). */
export async function openDb(o: OpenDbOptions): Promise<Db> {
  if (o.url) {
    const { openServerDb } = await import('./server.ts');
    return openServerDb(o.url, o.schema, o.poolSize ?? 10);
  }
  const { openEmbeddedDb } = await import('./pglite.ts');
  return openEmbeddedDb(o.dir);
}

/**
 * A Db whose calls wait for `opening`: lets a process serve before a store that takes seconds to create on a
 * first start (PGlite's initdb) is open. A failed opening fails every call (the opener reports it).
 */
export function whenOpen(opening: Promise<Db>, kind: Db['kind']): Db {
  return {
    kind,
    query: async (text, params) => (await opening).query(text, params),
    transaction: async (fn) => (await opening).transaction(fn),
    exec: async (text) => (await opening).exec(text),
    close: async () => (await opening).close(),
  };
}
