// The control store for tests, on both backends: PGlite (in memory) always, and the PostgreSQL server of
// TEST_DATABASE_URL (.ci/run starts one) on a schema of its own per store. Without a server the server variant
// is skipped with a one-line notice, except under CI=true, where a missing server fails.

import { type ControlStore, openControl } from '../../control/store.ts';
import { openServerDbForTests } from '../../control/test-support.ts';
import { uniqueName } from './kafka.ts';

export interface Backend {
  name: 'pglite' | 'server';
  /** A fresh, migrated store; `dispose` drops what it made. */
  open(): Promise<TestControl>;
}

export interface TestControl {
  db: ControlStore;
  /** The DATABASE_URL and schema a child process must use to share this store (server only). */
  url?: string;
  schema?: string;
  dispose(): Promise<void>;
}

export const serverUrl = process.env.TEST_DATABASE_URL || undefined;

let noticed = false;
/** The backends to run a control-plane test on. */
export function backends(): Backend[] {
  const list: Backend[] = [
    {
      name: 'pglite',
      open: async () => {
        const db = await openControl({ url: undefined, dataDir: '', memory: true });
        return { db, dispose: () => db.close() };
      },
    },
  ];
  if (serverUrl) {
    list.push({ name: 'server', open: () => openServerControl(serverUrl) });
  } else if (process.env.CI === 'true') {
    throw new Error('CI: TEST_DATABASE_URL is not set; .ci/run starts a PostgreSQL server for these tests');
  } else if (!noticed) {
    noticed = true;
    process.stderr.write(
      'control-plane tests: no TEST_DATABASE_URL, the PostgreSQL server variant is skipped\n',
    );
  }
  return list;
}

/** A migrated store on its own schema (test_...) of the server at `url`; dropped on dispose. */
export async function openServerControl(url: string): Promise<TestControl> {
  const schema = uniqueName('test_ctl').replace(/[^a-z0-9_]/g, '_');
  const db = await openControl({ url, dataDir: '', schema });
  return {
    db,
    url,
    schema,
    dispose: async () => {
      await db.close();
      await openServerDbForTests(url, (admin) => admin.dropTestSchema(schema));
    },
  };
}

let shared: Promise<ControlStore> | undefined;
/** One in-memory PGlite store for this test file's process (closed when the process ends). */
export function memoryControl(): Promise<ControlStore> {
  shared ??= openControl({ url: undefined, dataDir: '', memory: true });
  return shared;
}
