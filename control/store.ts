// Opens the control store a process uses: PGlite under DATA_DIR/control (one owner: a lock file says so), or
// the PostgreSQL server of DATABASE_URL shared by every process; migrated before it is handed out.
import { join } from 'node:path';
import { claimDataDir } from '../core/startup.ts';
import { type Db, openDb } from './db.ts';
import { migrateControl } from './migrate.ts';

export type ControlStore = Db;

export interface ControlOptions {
  /** DATABASE_URL; undefined: embedded PGlite. */
  url: string | undefined;
  /** DATA_DIR: the embedded store lives in DATA_DIR/control. */
  dataDir: string;
  /** On a server, a schema of its own (tests). */
  schema?: string;
  /** Embedded in memory, without a directory or lock (tests). */
  memory?: boolean;
}

/** The embedded store's directory under DATA_DIR (what to back up, with the export files). */
export const controlDir = (dataDir: string) => join(dataDir, 'control');

export async function openControl(o: ControlOptions): Promise<ControlStore> {
  const dir = controlDir(o.dataDir);
  // PGlite belongs to one process: a second one gets the one-line error of core/startup.ts.
  if (!o.url && !o.memory) claimDataDir(dir);
  const db = await openDb({
    url: o.url,
    dir: o.memory ? 'memory://' : join(dir, 'pgdata'),
    ...(o.schema ? { schema: o.schema } : {}),
  });
  try {
    await migrateControl(db);
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
  return db;
}
