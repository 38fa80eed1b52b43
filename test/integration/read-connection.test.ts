// The API's reads have a connection of their own (readClient): a long statement of background work on the
// engine's client (the sealer's, retention's, a migration's) does not hold them. On the embedded engine a
// connection runs its queries one at a time, so with one shared connection the read below would wait for the
// whole statement; and chdb runs bound statements one at a time across all its connections, so a bound
// background statement would hold a bound read too, were its values bound (engine/values-as-data.ts).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';

let engine: TestEngine;

beforeAll(async () => {
  engine = await openTestEngine();
}, 60_000);

afterAll(async () => {
  await engine?.dispose();
});

/**
 * Seconds of work on one thread on the engine client, started before `read` runs: the read must answer while
 * it still runs. Settings in the text: nothing outlives it. The engine must not be closed under a running
 * query, so the statement is awaited too.
 */
async function readDuringLongStatement(bound: boolean, read: () => Promise<void>): Promise<void> {
  let slowDone = false;
  const slow = engine.ch.client
    .query({
      query: bound
        ? 'SELECT count() AS n FROM numbers({n:UInt64}) WHERE sipHash64(number) % {m:UInt8} = 1 SETTINGS max_threads = 1'
        : 'SELECT count() AS n FROM numbers(150000000) WHERE sipHash64(number) % 7 = 1 SETTINGS max_threads = 1',
      query_params: bound ? { n: 150_000_000, m: 7 } : undefined,
      format: 'JSONEachRow',
    })
    .then((rs) => rs.json<{ n: string }>())
    .finally(() => {
      slowDone = true;
    });
  // Let the long statement start first.
  await new Promise((ok) => setTimeout(ok, 200));
  await read();
  expect(slowDone).toBe(false);
  const [row] = await slow;
  expect(Number(row?.n)).toBeGreaterThan(0);
}

it('answers a read while a long statement runs on the engine client', async () => {
  await readDuringLongStatement(false, async () => {
    const rs = await engine.ch.readClient.query({ query: 'SELECT 1 AS one', format: 'JSONEachRow' });
    expect(await rs.json()).toEqual([{ one: 1 }]);
  });
}, 120_000);

it('answers a bound read while a long bound statement runs on the engine client', async () => {
  // The statement's values go in as data on the engine client, so it does not take chdb's chain of bound
  // statements, which the read (bound, on its own connection) takes.
  await readDuringLongStatement(true, async () => {
    const rs = await engine.ch.readClient.query({
      query: 'SELECT {x:String} AS x, {ids:Array(String)} AS ids',
      query_params: { x: "it's", ids: ['a', "b'c"] },
      format: 'JSONEachRow',
    });
    expect(await rs.json()).toEqual([{ x: "it's", ids: ['a', "b'c"] }]);
  });
}, 120_000);

it("gives the engine client's statements the values they were given, arrays and sets included", async () => {
  const { ch } = engine;
  const ask = async (query: string, query_params: Record<string, unknown>) =>
    (await ch.client.query({ query, query_params, format: 'JSONEachRow' })).json();
  const hostile = "a'b\\c\ttab\nline ё 🙂";
  expect(await ask('SELECT {s:String} AS s, {d:Date} AS d', { s: hostile, d: '2025-02-03' })).toEqual([
    { s: hostile, d: '2025-02-03' },
  ]);
  expect(
    await ask(
      'SELECT number AS n FROM numbers(10) WHERE toString(number) IN {ids:Array(String)} ORDER BY n',
      {
        ids: ['2', '7', hostile],
      },
    ),
  ).toEqual([{ n: 2 }, { n: 7 }]);
  // Many at once, each with its own values (each run's rows are its own).
  const many = await Promise.all(
    Array.from({ length: 40 }, (_, i) => ask('SELECT {i:UInt32} + 1 AS j', { i })),
  );
  expect(many).toEqual(Array.from({ length: 40 }, (_, i) => [{ j: i + 1 }]));
});
