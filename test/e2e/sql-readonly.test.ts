// /clickhouse is read-only on the embedded engine, where `readonly = 1` alone is not enough (measured: the
// scalar file() and INTO OUTFILE still ran). Every way at DATA_DIR's secret files or at a write is tried, by
// GET and by POST, and must be refused with ClickHouse's code for it; none may show the secret or leave a file;
// a query's settings never reach the service's own queries; credentials and scopes answer as documented.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey } from '../../core/api-keys.ts';
import { mintToken } from '../../core/tokens.ts';
import { type Service, startService } from '../helpers/service.ts';

describe('/clickhouse refuses everything but reads', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-sql-readonly-'));
  const dataDir = join(dir, 'data');
  const keysFile = join(dir, 'keys.json');
  const sql = createKey(keysFile, { name: 'engineer', scopes: ['query:sql'] });
  const team = createKey(keysFile, { name: 'team', scopes: ['query:sql'], teamId: 't1' });
  const reader = createKey(keysFile, { name: 'reader', scopes: ['read:analytics', 'write:events'] });
  const outfile = join(dir, 'stolen.txt');
  let service: Service;
  // The signing secret the service generates into DATA_DIR on first start: the file every attempt aims at.
  let SECRET: string;
  const basic = (k: { key: string; record: { id: string } }) =>
    `Basic ${Buffer.from(`${k.record.id}:${k.key}`).toString('base64')}`;

  beforeAll(async () => {
    service = await startService({ DATA_DIR: dataDir, API_KEYS_FILE: keysFile });
    SECRET = readFileSync(join(dataDir, 'jwt-secret'), 'utf8').trim();
  }, 120_000);
  afterAll(async () => {
    service?.child.kill('SIGTERM');
    await service?.exited;
    rmSync(dir, { recursive: true, force: true });
  });

  async function ask(query: string, opts: { method?: 'GET' | 'POST'; params?: string; auth?: string } = {}) {
    const method = opts.method ?? 'POST';
    const qs = new URLSearchParams(opts.params ?? '');
    if (method === 'GET') qs.set('query', query);
    const res = await fetch(`${service.base}/clickhouse/?${qs}`, {
      method,
      headers: { authorization: opts.auth ?? basic(sql) },
      ...(method === 'POST' ? { body: query } : {}),
    });
    return {
      status: res.status,
      code: res.headers.get('x-clickhouse-exception-code'),
      body: await res.text(),
      res,
    };
  }

  // The key's secret is everything after `tally_<id>_`: base64url, so it may hold '_' itself (split('_')[2]
  // was then a fragment as short as one letter, found in any error message).
  const secrets = () => [SECRET, sql.key.split('_').slice(2).join('_')];

  // [query, expected code]: each a different road to a file, a server, a write or another user's queries.
  const refused: Array<[string, string]> = [
    [`SELECT file('${join(dataDir, 'jwt-secret')}')`, '497'],
    [`SELECT * FROM file('${join(dataDir, 'jwt-secret')}', 'RawBLOB')`, '497'],
    [`SELECT (SELECT file('${join(dataDir, 'jwt-secret')}'))`, '497'],
    [
      `SELECT count() FROM usage_events WHERE event_id IN (SELECT file('${join(dataDir, 'jwt-secret')}'))`,
      '497',
    ],
    [`WITH s AS (SELECT * FROM file('${join(dataDir, 'jwt-secret')}', 'RawBLOB')) SELECT * FROM s`, '497'],
    ["SELECT * FROM url('http://127.0.0.1:1/x', 'RawBLOB')", '497'],
    ["SELECT * FROM remote('127.0.0.1', system.one)", '497'],
    ["SELECT * FROM s3('http://127.0.0.1:1/b/k', 'RawBLOB')", '497'],
    ["SELECT * FROM executable('cat /etc/hostname', 'RawBLOB', 'x String')", '497'],
    ["SELECT * FROM merge('system', '^query_log$')", '497'],
    ["SELECT dictGet('d', 'a', 1)", '497'],
    ["SELECT getSetting('max_execution_time')", '497'],
    ['SELECT * FROM system.query_log', '497'],
    ['SELECT * FROM system.processes', '497'],
    ['SELECT 1 IN system.query_log', '497'],
    ['SELECT * FROM system.server_settings', '497'],
    ['SELECT * FROM system.disks', '497'],
    ['SHOW PROCESSLIST', '164'],
    [`SELECT 1 INTO OUTFILE '${outfile}'`, '344'],
    [`SELECT 1 INTO OUTFILE '${outfile}' FORMAT CSV`, '344'],
    [`SELECT 1; SELECT file('${join(dataDir, 'jwt-secret')}')`, '62'],
    [`SELECT 1; INSERT INTO usage_events (event_id) VALUES ('x')`, '62'],
    ["INSERT INTO usage_events (event_id) VALUES ('x')", '164'],
    [`INSERT INTO FUNCTION file('${outfile}', 'CSV') SELECT 1`, '164'],
    ['CREATE TABLE x (a UInt8) ENGINE = Memory', '164'],
    ['DROP TABLE usage_events', '164'],
    ['ALTER TABLE usage_events DELETE WHERE 1', '164'],
    ['SYSTEM FLUSH LOGS', '164'],
    ["KILL QUERY WHERE query_id = 'x'", '164'],
    ['SET readonly = 0', '164'],
    ['SELECT 1 SETTINGS max_execution_time = 100000', '164'],
    ['SELECT 1 SETTINGS readonly = 0', '164'],
    ['SELECT * FROM (SELECT 1 SETTINGS max_memory_usage = 0)', '164'],
  ];

  for (const method of ['GET', 'POST'] as const) {
    it(`${method}: every road to a file, a server, a write or other users' queries is refused with ClickHouse's code`, async () => {
      for (const [query, code] of refused) {
        const r = await ask(query, { method });
        expect({ query, code: r.code }).toEqual({ query, code });
        expect(r.status).toBeGreaterThanOrEqual(400);
        expect(r.body).toMatch(new RegExp(`^Code: ${code}\\. DB::Exception: `));
        for (const s of secrets()) expect(r.body).not.toContain(s);
      }
      expect(existsSync(outfile)).toBe(false);
    });
  }

  it('settings outside the allow-list, readonly = 0 and other databases are refused from the URL too', async () => {
    expect((await ask('SELECT 1', { params: 'max_execution_time=100000' })).code).toBeNull();
    expect((await ask('SELECT 1', { params: 'readonly=0' })).code).toBe('164');
    expect((await ask('SELECT 1', { params: 'allow_ddl=1' })).code).toBe('164');
    expect((await ask('SELECT 1', { params: 'max_threads=64' })).code).toBe('164');
    expect((await ask('SELECT 1', { params: 'database=system' })).code).toBe('291');
    expect((await ask('SELECT 1', { params: 'compress=1' })).code).toBe('344');
    // A table named by a query parameter is checked as substituted.
    const viaParam = await ask('SELECT * FROM {t:Identifier}', { params: 'param_t=system.query_log' });
    expect(viaParam.code).toBe('497');
    // Native at a client's protocol revision (clickhouse-go) is re-framed up to 54460; a later one, or a type the
    // re-framing cannot carry, is refused (344), never answered with bytes the client would misread.
    const native = await ask('SELECT 1', { params: 'default_format=Native&client_protocol_version=54460' });
    expect(native.code).toBeNull();
    // SHOW is not streamed by the engine: answered whole, in Native too.
    const show = await ask('SHOW TABLES', { params: 'default_format=Native&client_protocol_version=54460' });
    expect(show.code).toBeNull();
    expect(show.body).toContain('usage_daily');
    const later = await ask('SELECT 1', { params: 'default_format=Native&client_protocol_version=54470' });
    expect(later.code).toBe('344');
    const state = await ask('SELECT uniqExactState(1)', {
      params: 'default_format=Native&client_protocol_version=54460',
    });
    expect(state.code).toBe('344');
    expect(state.body).toContain('AggregateFunction(uniqExact, UInt8)');
    const binaryTypes = await ask('SELECT 1', {
      params:
        'default_format=Native&client_protocol_version=54460&output_format_native_encode_types_in_binary_format=1',
    });
    expect(binaryTypes.code).toBe('344');
    // Grafana's row limit arrives as the `limit` setting.
    const limited = await ask('SELECT number FROM numbers(10) FORMAT TSV', { params: 'limit=3' });
    expect(limited.body).toBe('0\n1\n2\n');
    // A lower limit is the client's to choose; a higher one is ignored (the service's stays).
    const lowered = await ask('SELECT number FROM numbers(10)', { params: 'max_result_rows=5' });
    expect(lowered.code).toBe('396');
    const settings = await ask(
      "SELECT name, value FROM system.settings WHERE name IN ('readonly', 'max_execution_time') ORDER BY name FORMAT TSV",
      { params: 'max_execution_time=100000' },
    );
    expect(settings.body).toBe('max_execution_time\t30\nreadonly\t1\n');
  });

  it("a query's settings never reach the service's own queries (separate sessions)", async () => {
    // Allowed settings set on a /clickhouse session: if they leaked into the shared connection, the insert below
    // would meet readonly = 1 and the API's answers would change format.
    const r = await ask('SELECT now() FORMAT TSV', {
      params: 'date_time_output_format=unix_timestamp&session_id=shared&max_result_rows=1',
    });
    expect(r.status).toBe(200);
    expect(r.body.trim()).toMatch(/^\d+$/);
    const token = await mintToken(SECRET, { sub: 'p', scope: 'write:events read:analytics' });
    const events = Array.from({ length: 3 }, (_, i) => ({
      event_id: `ro-${i}`,
      type: 'log',
      timestamp: `2025-04-0${i + 1}T10:00:00Z`,
      severity: 'info',
      service: 'svc',
      message: `m${i}`,
    }));
    const posted = await fetch(`${service.base}/events?wait=stored`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(events),
    });
    expect(posted.status).toBe(200);
    const logs = await fetch(`${service.base}/logs/system-events?service=svc&limit=10`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const body = (await logs.json()) as { events: Array<{ timestamp: string }> };
    expect(body.events).toHaveLength(3);
    expect(body.events[0]?.timestamp).toBe('2025-04-03T10:00:00.000Z');
  });

  it('credentials: Basic, X-ClickHouse-User/Key and Bearer; scope query:sql only; team-bound 403; wrong 401', async () => {
    expect((await ask('SELECT 1')).body).toBe('1\n');
    const viaHeaders = await fetch(`${service.base}/clickhouse?query=SELECT%202`, {
      headers: { 'x-clickhouse-user': sql.record.id, 'x-clickhouse-key': sql.key },
    });
    expect(await viaHeaders.text()).toBe('2\n');
    const jwt = await mintToken(SECRET, { sub: 'engineer', scope: 'query:sql' });
    expect((await ask('SELECT 3', { auth: `Bearer ${jwt}` })).body).toBe('3\n');
    const admin = await mintToken(SECRET, { sub: 'admin' });
    const noScope = await ask('SELECT 1', { auth: `Bearer ${admin}` });
    expect([noScope.status, noScope.code]).toEqual([403, '497']);
    expect((await ask('SELECT 1', { auth: basic(reader) })).status).toBe(403);
    const teamBound = await ask('SELECT 1', { auth: basic(team) });
    expect([teamBound.status, teamBound.code]).toEqual([403, '497']);
    const teamJwt = await mintToken(SECRET, { sub: 'x', scope: 'query:sql', team_id: 't1' });
    expect((await ask('SELECT 1', { auth: `Bearer ${teamJwt}` })).status).toBe(403);
    const wrongUser = await ask('SELECT 1', {
      auth: `Basic ${Buffer.from(`default:${sql.key}`).toString('base64')}`,
    });
    expect([wrongUser.status, wrongUser.code]).toEqual([401, '516']);
    const none = await fetch(`${service.base}/clickhouse?query=SELECT%201`);
    expect([none.status, none.headers.get('x-clickhouse-exception-code')]).toEqual([401, '516']);
    expect(await none.text()).toMatch(/^Code: 516\. DB::Exception: /);
    // Per identity in /metrics: counts by outcome, never the SQL.
    const metrics = await (await fetch(`${service.base}/metrics`)).text();
    expect(metrics).toMatch(
      new RegExp(`tally_sql_queries_total\\{identity="key:${sql.record.id}",outcome="ok"\\} [1-9]`),
    );
    expect(metrics).toMatch(
      new RegExp(`tally_sql_queries_total\\{identity="key:${sql.record.id}",outcome="refused"\\} [1-9]`),
    );
    expect(metrics).not.toContain('SELECT');
  });

  it('answers like a ClickHouse server: headers, formats, parameters, compression', async () => {
    const r = await ask('SELECT {n:UInt8} + 1 AS x FORMAT JSONEachRow', {
      params: 'param_n=41&query_id=q-1',
    });
    expect(r.body).toBe('{"x":42}\n');
    expect(r.res.headers.get('x-clickhouse-query-id')).toBe('q-1');
    expect(r.res.headers.get('x-clickhouse-format')).toBe('JSONEachRow');
    expect(JSON.parse(r.res.headers.get('x-clickhouse-summary') ?? '{}')).toHaveProperty('read_rows');
    const def = await ask('SELECT 1 AS x', { params: 'default_format=JSONCompact' });
    expect(def.res.headers.get('x-clickhouse-format')).toBe('JSONCompact');
    expect(JSON.parse(def.body).data).toEqual([[1]]);
    const gz = await fetch(`${service.base}/clickhouse?enable_http_compression=1`, {
      method: 'POST',
      headers: { authorization: basic(sql), 'accept-encoding': 'gzip' },
      body: 'SELECT count() FROM numbers(1000)',
    });
    expect(gz.headers.get('content-encoding')).toBe('gzip');
    // fetch decodes what came as gzip
    expect(await gz.text()).toBe('1000\n');
  });
});
