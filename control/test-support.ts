// For tests only: drops a test schema on a server, refusing any name that does not mark it as a test's.
import pg from 'pg';

export async function openServerDbForTests(
  url: string,
  fn: (admin: { dropTestSchema(schema: string): Promise<void> }) => Promise<void>,
): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await fn({
      async dropTestSchema(schema) {
        if (!/^test_[a-z0-9_]+$/.test(schema)) throw new Error(`refusing to drop non-test schema ${schema}`);
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      },
    });
  } finally {
    await client.end();
  }
}
