import { describe, expect, it } from 'vitest';
import { SqlError } from '../../clickhouse/sql/index.ts';
import { credentialsOf, encodingFor, parseParams, statusOf } from './protocol.ts';

const KEY = `tally_0123456789abcdef_${'A'.repeat(43)}`;
const headers = (h: Record<string, string>) => (n: string) => h[n.toLowerCase()];
const fail = (f: () => unknown) => {
  try {
    f();
    return 'ok';
  } catch (err) {
    return err instanceof SqlError ? err.code : String(err);
  }
};

describe('credentialsOf', () => {
  it('takes Basic and X-ClickHouse-User/Key when the user is the key id, and passes Bearer through', () => {
    const basic = `Basic ${Buffer.from(`0123456789abcdef:${KEY}`).toString('base64')}`;
    expect(credentialsOf(headers({ authorization: basic }))).toEqual({
      authorization: undefined,
      apiKey: KEY,
    });
    expect(
      credentialsOf(headers({ 'x-clickhouse-user': '0123456789abcdef', 'x-clickhouse-key': KEY })),
    ).toEqual({ authorization: undefined, apiKey: KEY });
    expect(credentialsOf(headers({ authorization: 'Bearer a.b.c' }))).toEqual({
      authorization: 'Bearer a.b.c',
      apiKey: undefined,
    });
    const other = `Basic ${Buffer.from(`default:${KEY}`).toString('base64')}`;
    expect(fail(() => credentialsOf(headers({ authorization: other })))).toBe(516);
  });
});

describe('parseParams', () => {
  const url = (q: string) => new URL(`http://x/clickhouse?${q}`);
  const none = () => undefined;
  it('joins the URL query and the body, collects param_*, keeps allowed settings', () => {
    const p = parseParams(
      url('query=SELECT&param_a=1&date_time_output_format=iso&session_id=s'),
      '1',
      none,
      'analytics',
    );
    expect(p.query).toBe('SELECT\n1');
    expect(p.params).toEqual({ a: '1' });
    expect(p.settings).toEqual({ date_time_output_format: 'iso' });
  });
  it('refuses settings outside the allow-list, readonly=0, another database, block compression', () => {
    expect(fail(() => parseParams(url('max_threads=8'), 'SELECT 1', none, 'analytics'))).toBe(164);
    expect(fail(() => parseParams(url('readonly=0'), 'SELECT 1', none, 'analytics'))).toBe(164);
    expect(fail(() => parseParams(url('database=system'), 'SELECT 1', none, 'analytics'))).toBe(291);
    expect(fail(() => parseParams(url('compress=1'), 'SELECT 1', none, 'analytics'))).toBe(344);
    expect(fail(() => parseParams(url('database=default&readonly=1'), 'SELECT 1', none, 'analytics'))).toBe(
      'ok',
    );
  });
});

describe('answers', () => {
  it("maps codes to ClickHouse's statuses and picks the client's first encoding it can write", () => {
    expect([statusOf(516), statusOf(497), statusOf(62), statusOf(60), statusOf(202), statusOf(159)]).toEqual([
      401, 403, 400, 404, 429, 500,
    ]);
    expect(encodingFor('lz4, zstd, br, gzip')).toBe('br');
    expect(encodingFor('gzip;q=0, deflate')).toBe('deflate');
    expect(encodingFor(undefined)).toBeUndefined();
  });
});
