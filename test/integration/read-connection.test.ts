// The API's reads have a connection of their own (readClient): a long statement of background work on the
// engine's client (the sealer's, retention's, a migration's) does not hold them. On the embedded engine a
// connection runs its queries one at a time, so with one shared connection the read below would wait for the
// whole statement.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';

let engine: TestEngine;

beforeAll(async () => {
  engine = await openTestEngine();
}, 60_000);

afterAll(async () => {
  await engine?.dispose();
});

it('answers a read while a long statement runs on the engine client', async () => {
  const { ch } = engine;
  let slowDone = false;
  // Seconds of work on one thread, no parameters (parameterized queries are one at a time in chdb's process
  // whatever the connection: see clickhouse/queries/query.ts). Settings in the text: nothing outlives it.
  const slow = ch.client
    .query({
      query:
        'SELECT count() AS n FROM numbers(150000000) WHERE sipHash64(number) % 7 = 1 SETTINGS max_threads = 1',
      format: 'JSONEachRow',
    })
    .then((rs) => rs.json<{ n: string }>())
    .finally(() => {
      slowDone = true;
    });
  // Let the long statement start first.
  await new Promise((ok) => setTimeout(ok, 200));
  const rs = await ch.readClient.query({ query: 'SELECT 1 AS one', format: 'JSONEachRow' });
  expect(await rs.json()).toEqual([{ one: 1 }]);
  expect(slowDone).toBe(false);
  // The engine must not be closed under a running query.
  const [row] = await slow;
  expect(Number(row?.n)).toBeGreaterThan(0);
}, 120_000);
