// /clickhouse with unmodified ClickHouse clients through an API key, as a data engineer would use them:
// @clickhouse/client (JSON formats), Python clickhouse-connect from PyPI (Native, query_df) and ClickHouse's JDBC
// driver from Maven (RowBinaryWithNamesAndTypes; it stands in for DBeaver) and clickhouse-go v2 from the Go module
// proxy (Grafana's driver: Native at its protocol revision, over HTTP with an HTTP path), each with bound
// parameters, give the same numbers as GET /reports/usage-summary; refusals arrive as the clients' usual errors
// with ClickHouse's codes; a query past SQL_MAX_EXECUTION_SECONDS ends with TIMEOUT_EXCEEDED (159).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey } from '../../core/api-keys.ts';
import { mintToken } from '../../core/tokens.ts';
import { runGoSqlClient } from '../helpers/go-client.ts';
import { runJdbcClient } from '../helpers/jdbc.ts';
import { pythonWith } from '../helpers/python.ts';
import { type Service, startService } from '../helpers/service.ts';

const SECRET = 'sql-clients-secret-sql-clients-secret-0123';
/** Pinned: the client and the DataFrame library query_df hands back. */
const CLICKHOUSE_CONNECT = ['clickhouse-connect==1.12.0', 'pandas==3.1.1'];

// The usage summary from the rollups, as docs/sql.md shows it: the same definitions as the API's.
const SUMMARY_SQL = `SELECT
  (SELECT uniqExact(user_id) FROM usage_first_seen WHERE first_day <= {end:Date}) AS total_users,
  uniqExactIf(user_id, active = 1) AS active_users,
  uniqExactMerge(sessions) AS total_sessions
FROM usage_daily WHERE day BETWEEN {start:Date} AND {end:Date}`;

const RANGE = { start: '2025-03-01', end: '2025-03-20' };

// Columns of most types a query over the documented tables returns (LowCardinality, Enum8, DateTime64 from the
// table; DateTime with a zone, Decimal, Nullable, Array, Tuple, Map, UUID, Bool, FixedString, Date32, floats
// and signed integers computed), with bound parameters.
const TYPED_SQL = `SELECT team_id, service, type, count() AS events, uniqExact(user_id) AS users,
  min(timestamp) AS first_at, toDateTime(min(timestamp), 'Europe/Berlin') AS first_at_berlin,
  toDate(min(timestamp)) AS first_day, toDecimal64(count() / 4, 2) AS quarter,
  CAST(NULL, 'Nullable(String)') AS nothing, [toUInt32(count()), 1] AS arr, tuple(team_id, toUInt8(1)) AS tup,
  map('events', count()) AS m, toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0') AS uuid, toBool(count() > 1) AS many,
  toFixedString('ab', 3) AS fixed, toDate32('1960-01-01') AS d32, count() / 4 AS ratio, -toInt64(count()) AS neg
FROM usage_events FINAL
WHERE toDate(timestamp) BETWEEN {start:Date} AND {end:Date}
GROUP BY team_id, service, type ORDER BY team_id, type`;

function events(): object[] {
  const out: object[] = [];
  for (let i = 0; i < 120; i++) {
    const day = 1 + (i % 25);
    const ts = `2025-03-${String(day).padStart(2, '0')}T10:${String(i % 60).padStart(2, '0')}:00Z`;
    const user = `u${i % 17}`;
    const type = i % 3 === 0 ? 'session_start' : i % 3 === 1 ? 'activity' : 'user_registered';
    out.push({
      event_id: `sqlc-${i}`,
      type,
      timestamp: ts,
      user_id: user,
      team_id: `t${i % 3}`,
      service: 'billing',
      ...(type === 'session_start' ? { session_id: `s${i % 40}` } : {}),
    });
  }
  return out;
}

describe('/clickhouse with unmodified ClickHouse clients', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-sql-clients-'));
  const keysFile = join(dir, 'keys.json');
  const sql = createKey(keysFile, { name: 'engineer', scopes: ['query:sql'] });
  const reader = createKey(keysFile, { name: 'reader', scopes: ['read:analytics'] });
  let service: Service;
  let expected: { total_users: number; active_users: number; total_sessions: number };

  beforeAll(async () => {
    service = await startService({
      DATA_DIR: join(dir, 'data'),
      AUTH_JWT_SECRET: SECRET,
      API_KEYS_FILE: keysFile,
      SQL_MAX_EXECUTION_SECONDS: '2',
    });
    const token = await mintToken(SECRET, { sub: 'producer', scope: 'write:events' });
    const posted = await fetch(`${service.base}/events?wait=stored`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(events()),
    });
    expect(posted.status).toBe(200);
    const res = await fetch(
      `${service.base}/reports/usage-summary?start_date=${RANGE.start}&end_date=${RANGE.end}`,
      { headers: { 'x-api-key': reader.key } },
    );
    expect(res.status).toBe(200);
    expected = (await res.json()) as typeof expected;
    expect(expected.total_sessions).toBeGreaterThan(0);
  }, 120_000);
  afterAll(async () => {
    service?.child.kill('SIGTERM');
    await service?.exited;
    rmSync(dir, { recursive: true, force: true });
  });

  const node = () =>
    createClient({
      url: service.base,
      pathname: '/clickhouse',
      username: sql.record.id,
      password: sql.key,
      compression: { response: true },
    });

  it('@clickhouse/client: JSON with query parameters gives the usage summary', async () => {
    const client = node();
    try {
      const rs = await client.query({ query: SUMMARY_SQL, query_params: RANGE, format: 'JSON' });
      const body = await rs.json<{ total_users: string; active_users: string; total_sessions: string }>();
      const [row] = body.data;
      expect({
        total_users: Number(row?.total_users),
        active_users: Number(row?.active_users),
        total_sessions: Number(row?.total_sessions),
      }).toEqual(expected);
      // Streamed rows in a row format, compressed (enable_http_compression + Accept-Encoding).
      const rows = await (
        await client.query({ query: 'SELECT number FROM numbers(100000)', format: 'JSONEachRow' })
      ).json<{ number: string | number }>();
      expect(rows).toHaveLength(100_000);
      expect(Number(rows.at(-1)?.number)).toBe(99_999);
      expect((await client.ping()).success).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('@clickhouse/client: refusals are ClickHouse errors with their codes; a long query times out (159)', async () => {
    const client = node();
    const codeOf = async (query: string) => {
      try {
        await (await client.query({ query, format: 'JSONEachRow' })).json();
        return 'ran';
      } catch (err) {
        return (err as { code?: string }).code;
      }
    };
    try {
      expect(await codeOf("SELECT file('/etc/hostname')")).toBe('497');
      expect(await codeOf('SELECT * FROM system.query_log')).toBe('497');
      expect(await codeOf("SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'a String')")).toBe('497');
      expect(await codeOf('SELECT count() FROM numbers(1000000000000)')).toBe('159');
      const command = await client.command({ query: 'CREATE TABLE x (a UInt8) ENGINE = Memory' }).then(
        () => 'ran',
        (err: { code?: string }) => err.code,
      );
      expect(command).toBe('164');
    } finally {
      await client.close();
    }
  });

  it('clickhouse-connect (PyPI): Native with parameters gives the usage summary; query_df works; errors keep their codes', () => {
    const python = pythonWith('clickhouse-connect', CLICKHOUSE_CONNECT);
    const script = `
import json, sys
import clickhouse_connect
from clickhouse_connect.driver.exceptions import DatabaseError
port, user, key, sql, start, end = sys.argv[1:7]
client = clickhouse_connect.get_client(host='127.0.0.1', port=int(port), username=user, password=key,
                                       proxy_path='/clickhouse')
row = client.query(sql, parameters={'start': start, 'end': end}).result_rows[0]
df = client.query_df('SELECT team_id, uniqExact(user_id) AS users FROM usage_daily '
                     'WHERE day BETWEEN {start:Date} AND {end:Date} GROUP BY team_id ORDER BY team_id',
                     parameters={'start': start, 'end': end})
try:
    client.query("SELECT file('/etc/hostname')")
    refused = None
except DatabaseError as e:
    refused = str(e)
print(json.dumps({'summary': {'total_users': row[0], 'active_users': row[1], 'total_sessions': row[2]},
                  'df_columns': list(df.columns), 'df_rows': len(df), 'refused': refused}))
`;
    const port = new URL(service.base).port;
    const out = execFileSync(
      python,
      ['-c', script, port, sql.record.id, sql.key, SUMMARY_SQL, RANGE.start, RANGE.end],
      {
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    const result = JSON.parse(out.trim().split('\n').at(-1) as string);
    expect(result.summary).toEqual(expected);
    expect(result.df_columns).toEqual(['team_id', 'users']);
    expect(result.df_rows).toBe(3);
    expect(result.refused).toContain('code: 497');
  }, 300_000);

  it('JDBC (jdbc-v2, as DBeaver uses it): RowBinaryWithNamesAndTypes with bound parameters gives the usage summary', () => {
    // The driver binds `?` itself; (end, start, end) as the query below takes them.
    const jdbcSql = SUMMARY_SQL.replace('{end:Date}', 'toDate(?)')
      .replace('{start:Date}', 'toDate(?)')
      .replace('{end:Date}', 'toDate(?)');
    const out = runJdbcClient([
      `jdbc:clickhouse:${service.base}/clickhouse/default`,
      sql.record.id,
      sql.key,
      jdbcSql,
      RANGE.start,
      RANGE.end,
    ]);
    const lines = out.trim().split('\n');
    expect(JSON.parse(lines.at(-2) as string)).toEqual(expected);
    expect(lines.at(-1)).toBe('refused: 497');
  }, 300_000);

  it("clickhouse-go v2 over HTTP (Grafana's driver): Native at its protocol revision gives the usage summary and typed values", async () => {
    const out = runGoSqlClient([
      `127.0.0.1:${new URL(service.base).port}`,
      sql.record.id,
      sql.key,
      SUMMARY_SQL,
      RANGE.start,
      RANGE.end,
      TYPED_SQL,
    ]);
    const result = JSON.parse(out.trim().split('\n').at(-1) as string);
    expect(result.summary).toEqual(expected);
    // The same rows as JSON (no Native involved), to compare value by value.
    const client = node();
    let json: Record<string, unknown>[];
    try {
      json = await (
        await client.query({ query: TYPED_SQL, query_params: RANGE, format: 'JSONEachRow' })
      ).json<Record<string, unknown>>();
    } finally {
      await client.close();
    }
    const rows = result.typed.rows as Record<string, unknown>[];
    expect(rows.length).toBe(json.length);
    expect(rows.length).toBeGreaterThanOrEqual(3);
    expect(result.typed.types).toMatchObject({
      service: 'LowCardinality(String)',
      type: "Enum8('user_registered' = 1, 'session_start' = 2, 'session_end' = 3, 'activity' = 4)",
      first_at: "DateTime64(3, 'UTC')",
      first_at_berlin: "DateTime('Europe/Berlin')",
      quarter: 'Decimal(18, 2)',
      nothing: 'Nullable(String)',
      m: 'Map(String, UInt64)',
    });
    const iso = (ch: unknown) => `${String(ch).replace(' ', 'T')}`;
    rows.forEach((go, i) => {
      const j = json[i] as Record<string, unknown>;
      expect({
        team_id: go.team_id,
        service: go.service,
        type: go.type,
        events: go.events,
        users: go.users,
        first_at: Date.parse(String(go.first_at)),
        first_day: String(go.first_day).slice(0, 10),
        quarter: go.quarter,
        nothing: go.nothing,
        arr: go.arr,
        tup: go.tup,
        m: go.m,
        uuid: go.uuid,
        many: go.many,
        fixed: go.fixed,
        d32: String(go.d32).slice(0, 10),
        ratio: go.ratio,
        neg: go.neg,
      }).toEqual({
        team_id: j.team_id,
        service: j.service,
        type: j.type,
        events: Number(j.events),
        users: Number(j.users),
        first_at: Date.parse(`${iso(j.first_at)}Z`),
        first_day: j.first_day,
        quarter: String(j.quarter),
        nothing: null,
        arr: (j.arr as unknown[]).map(Number),
        tup: [(j.tup as unknown[])[0], 1],
        m: { events: Number((j.m as Record<string, unknown>).events) },
        uuid: j.uuid,
        many: j.many,
        fixed: 'ab\u0000',
        d32: '1960-01-01',
        ratio: j.ratio,
        neg: Number(j.neg),
      });
      // The same instant (to the second), in the column's own zone: Native at revision 0 would have lost it.
      const second = Math.floor(Date.parse(`${iso(j.first_at)}Z`) / 1000) * 1000;
      expect(Date.parse(String(go.first_at_berlin))).toBe(second);
      expect(String(go.first_at_berlin)).toMatch(/\+01:00$/);
    });
    // Refusals arrive as the driver's exceptions with ClickHouse's codes.
    expect(result.refused).toEqual({ file: 497, aggregate: 344 });
  }, 420_000);
});
