// serverSource: a server's export streams and whole reads are the HTTP body as it arrives, under the bound.
import { Readable } from 'node:stream';
import type { ClickHouseClient } from '@clickhouse/client';
import { describe, expect, it } from 'vitest';
import { jsonLines } from '../export-stream.ts';
import { serverSource } from './server.ts';

/** A client whose exec answers with `pieces` as the body, recording what it was asked. */
function clientOf(pieces: string[]) {
  const asked: Array<{ query: string; clickhouse_settings?: unknown }> = [];
  const client = {
    exec: async (p: { query: string; clickhouse_settings?: unknown }) => {
      asked.push(p);
      return { stream: Readable.from(pieces.map((s) => Buffer.from(s))) };
    },
  } as unknown as ClickHouseClient;
  return { client, asked };
}

const q = { query: 'SELECT n FROM t WHERE k = {k:String}', query_params: { k: 'x' } };
const signal = new AbortController().signal;

describe('serverSource', () => {
  it('reads the body in its pieces, under the bound, also when read is called on its own', async () => {
    const { client, asked } = clientOf(['[1]\n[', '2]\n']);
    const { read } = serverSource(client, { priority: '1' });
    const pieces: string[] = [];
    for await (const b of read(q, 'JSONCompactEachRow', signal)) pieces.push(Buffer.from(b).toString());
    expect(pieces).toEqual(['[1]\n[', '2]\n']);
    expect(asked).toMatchObject([
      { query: `${q.query}\nFORMAT JSONCompactEachRow`, clickhouse_settings: { priority: '1' } },
    ]);
  });

  it('gives jsonLines whole rows, and streams chunks with no row count', async () => {
    const rows: unknown[] = [];
    for await (const r of jsonLines(serverSource(clientOf(['[1]\n[', '2]\n']).client), q)) rows.push(r);
    expect(rows).toEqual([[1], [2]]);
    const chunks: Array<{ rows: number }> = [];
    for await (const c of serverSource(clientOf(['a\n', 'b\n']).client).stream(q, 'CSV', signal))
      chunks.push(c);
    expect(chunks.map((c) => c.rows)).toEqual([0, 0]);
  });
});
