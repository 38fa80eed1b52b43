// What a fault soak prints when an answer is off: which path answered, which (team, service, user) keys each
// usage table holds differently from the truth, and (embedded engine) deduplication records whose part never
// became a part, so that a rare failure can be explained from a CI log alone.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClickHouse } from '../../clickhouse/client.ts';
import { openContribution } from '../../clickhouse/queries/usage-open-day.ts';
import { sealedView } from '../../clickhouse/queries/usage-pairs.ts';
import { parseEvent } from '../../core/events.ts';
import type { GeneratedEvent } from '../../ingest/loadgen/generate.ts';
import type { SummaryQuery } from '../../ingest/loadgen/truth.ts';

const DAY_MS = 86_400_000;

interface KeyDays {
  /** `team|service|user` -> first day (YYYY-MM-DD) on or before the query's end. */
  [key: string]: string;
}

/** The first day of every (team, service, user) in the published events matching `q`, up to its end. */
function truthFirstDays(events: readonly GeneratedEvent[], q: SummaryQuery): KeyDays {
  const out: KeyDays = {};
  for (const e of events) {
    const parsed = parseEvent(e, Date.parse(q.end_date) + 10 * 365 * DAY_MS);
    if (!parsed.ok || parsed.event.kind !== 'usage') continue;
    const r = parsed.event.row;
    if (q.team_id !== undefined && r.team_id !== q.team_id) continue;
    if (q.service !== undefined && r.service !== q.service) continue;
    if (q.user_id !== undefined && r.user_id !== q.user_id) continue;
    const day = new Date(Math.floor(Date.parse(e.timestamp) / DAY_MS) * DAY_MS).toISOString().slice(0, 10);
    if (day > q.end_date) continue;
    const key = `${r.team_id}|${r.service}|${r.user_id}`;
    const was = out[key];
    if (was === undefined || day < was) out[key] = day;
  }
  return out;
}

// Each table's idea of the same thing: the first day of every key, up to the query's end, under its filters.
const TABLE_FIRST_DAYS: Record<string, string> = {
  usage_events:
    'SELECT team_id, toString(service) AS service, user_id, toString(min(toDate(timestamp))) AS d FROM usage_events WHERE toDate(timestamp) <= {end:Date}',
  usage_first_seen:
    'SELECT team_id, toString(service) AS service, user_id, toString(min(first_day)) AS d FROM usage_first_seen WHERE first_day <= {end:Date}',
  usage_daily:
    'SELECT team_id, toString(service) AS service, user_id, toString(min(day)) AS d FROM usage_daily WHERE day <= {end:Date}',
  usage_user_days:
    'SELECT team_id, toString(service) AS service, user_id, toString(min(day)) AS d FROM usage_user_days WHERE day <= {end:Date}',
  usage_points:
    "SELECT team_id, toString(service) AS service, entity AS user_id, toString(min(day)) AS d FROM usage_points WHERE family = 'seen' AND kind = 1 AND day <= {end:Date}",
  usage_points_by_day:
    "SELECT team_id, toString(service) AS service, entity AS user_id, toString(min(day)) AS d FROM usage_points_by_day WHERE family = 'seen' AND kind = 1 AND day <= {end:Date}",
};

async function tableFirstDays(ch: ClickHouse, table: string, q: SummaryQuery): Promise<KeyDays> {
  const where = [
    q.team_id === undefined ? '' : ' AND team_id = {team:String}',
    q.service === undefined ? '' : ' AND service = {service:String}',
    q.user_id === undefined
      ? ''
      : ` AND ${table.startsWith('usage_points') ? 'entity' : 'user_id'} = {user:String}`,
  ].join('');
  const rs = await ch.client.query({
    query: `${TABLE_FIRST_DAYS[table]}${where} GROUP BY team_id, service, user_id`,
    query_params: { end: q.end_date, team: q.team_id ?? '', service: q.service ?? '', user: q.user_id ?? '' },
    format: 'JSONEachRow',
  });
  const out: KeyDays = {};
  for (const r of await rs.json<{ team_id: string; service: string; user_id: string; d: string }>()) {
    out[`${r.team_id}|${r.service}|${r.user_id}`] = r.d;
  }
  return out;
}

/**
 * Lines explaining a usage-summary answer that differs from the truth: the path that answered (sealed pairs or
 * the daily rollups) and, for at most `limit` keys, the first day each usage table holds where one differs.
 */
export async function explainSummaryMismatch(
  ch: ClickHouse,
  events: readonly GeneratedEvent[],
  q: SummaryQuery,
  limit = 20,
): Promise<string[]> {
  const lines: string[] = [];
  // As usageSummary decides: sealed pairs plus the open days when every other day is sealed and the open days'
  // uncovered points are few, else the daily rollups.
  const view = q.user_id === undefined ? await sealedView(ch, q.start_date, q.end_date) : undefined;
  const open =
    view &&
    (await openContribution(ch, { open: view.open, filters: q, since: q.start_date, until: q.end_date }));
  lines.push(
    `  answered from: ${
      view && open
        ? `sealed usage_pairs (${view.keys.length} sealed days) and open days ${JSON.stringify(view.open)}`
        : 'the daily rollups (usage_first_seen for total_users, usage_daily for the rest)'
    }`,
  );
  const truth = truthFirstDays(events, q);
  const tables = Object.keys(TABLE_FIRST_DAYS);
  const held = await Promise.all(tables.map((t) => tableFirstDays(ch, t, q)));
  const keys = new Set([...Object.keys(truth), ...held.flatMap((h) => Object.keys(h))]);
  const differing = [...keys].filter((k) => held.some((h) => h[k] !== truth[k])).sort();
  lines.push(
    `  keys (team|service|user) whose first day differs from the truth in some table: ${differing.length}`,
  );
  for (const k of differing.slice(0, limit)) {
    const cells = tables.map((t, i) => `${t}=${held[i]?.[k] ?? 'missing'}`);
    lines.push(`    ${k}: truth=${truth[k] ?? 'none'} ${cells.join(' ')}`);
  }
  return lines;
}

/** Embedded engine or server: the parts of this database the engine set aside (a broken part at a start, say). */
export async function detachedParts(
  ch: ClickHouse,
): Promise<{ table: string; name: string; reason: string }[]> {
  const rs = await ch.client.query({
    query: `SELECT table, name, ifNull(reason, '') AS reason FROM system.detached_parts WHERE database = currentDatabase()`,
    format: 'JSONEachRow',
  });
  return rs.json();
}

export interface OrphanRecord {
  table: string;
  part: string;
  blockId: string;
  /** Its position among the table's records (1-based), and their number: when in the run it was written. */
  at: number;
  of: number;
}

/**
 * Embedded engine only: insert-deduplication records (deduplication_logs of a non-replicated MergeTree) whose
 * part never became a part, as a SIGKILL leaves them between the record's write and the part's rename. Such a
 * record makes the engine drop the retried block as a duplicate: the block is lost from that table. Found as a
 * record still in force whose part name another record was later given (the block number reused after the
 * restart), or that no active part covers. Empty on a server (no data directory here).
 */
export async function orphanedDedupRecords(ch: ClickHouse): Promise<OrphanRecord[]> {
  const tables = await ch.client.query({
    query: `SELECT name, data_paths FROM system.tables WHERE database = currentDatabase() AND engine LIKE '%MergeTree'`,
    format: 'JSONEachRow',
  });
  const parts = await ch.client.query({
    query: `SELECT table, partition_id, min_block_number AS lo, max_block_number AS hi FROM system.parts
      WHERE database = currentDatabase() AND active`,
    format: 'JSONEachRow',
  });
  const active = await parts.json<{ table: string; partition_id: string; lo: string; hi: string }>();
  const out: OrphanRecord[] = [];
  for (const t of await tables.json<{ name: string; data_paths: string[] }>()) {
    for (const dir of t.data_paths) {
      const logs = join(dir, 'deduplication_logs');
      if (!existsSync(logs)) continue;
      const files = readdirSync(logs)
        .map((f) => ({ f, n: Number(/_(\d+)\.txt$/.exec(f)?.[1] ?? 0) }))
        .sort((a, b) => a.n - b.n);
      // In force: block id -> (part, position); a DROP record ends one.
      const inForce = new Map<string, { part: string; at: number }>();
      const lastAddOfPart = new Map<string, number>();
      let at = 0;
      for (const { f } of files) {
        for (const line of readFileSync(join(logs, f), 'utf8').split('\n')) {
          const [op, part, blockId] = line.split('\t');
          if (part === undefined || blockId === undefined) continue;
          at += 1;
          if (op === '2') inForce.delete(blockId);
          else {
            inForce.set(blockId, { part, at });
            lastAddOfPart.set(part, at);
          }
        }
      }
      for (const [blockId, { part, at: pos }] of inForce) {
        const m = /^(.*)_(\d+)_(\d+)_(\d+)$/.exec(part);
        if (!m) continue;
        const block = Number(m[2]);
        const reused = (lastAddOfPart.get(part) ?? pos) > pos;
        const covered = active.some(
          (p) =>
            p.table === t.name && p.partition_id === m[1] && Number(p.lo) <= block && block <= Number(p.hi),
        );
        if (reused || !covered) out.push({ table: t.name, part, blockId, at: pos, of: at });
      }
    }
  }
  return out;
}

/**
 * Rows inserted beyond the published copies (the audit table counts every row inserted), grouped into runs of
 * consecutive published positions per kind: a batch stored twice under two tokens shows as one run, with the
 * times its rows were stored. At most `limit` runs.
 */
export async function explainExtraRows(
  ch: ClickHouse,
  events: readonly GeneratedEvent[],
  limit = 20,
): Promise<string[]> {
  const published = new Map<string, number>();
  const position = new Map<string, number>();
  events.forEach((e, i) => {
    published.set(e.event_id, (published.get(e.event_id) ?? 0) + 1);
    if (!position.has(e.event_id)) position.set(e.event_id, i);
  });
  const rs = await ch.client.query({
    query: `SELECT a.event_id AS id, any(a.kind) AS kind, count() AS n FROM test_ingest_audit AS a
      GROUP BY a.event_id HAVING n > 1`,
    format: 'JSONEachRow',
  });
  const extra: { at: number; id: string; kind: string; n: number }[] = [];
  for (const r of await rs.json<{ id: string; kind: string; n: string | number }>()) {
    const n = Number(r.n) - (published.get(r.id) ?? 0);
    if (n > 0) extra.push({ at: position.get(r.id) ?? -1, id: r.id, kind: r.kind, n });
  }
  extra.sort((a, b) => a.at - b.at);
  const runs: { kind: string; from: number; to: number; rows: number; ids: string[] }[] = [];
  for (const x of extra) {
    const last = runs.at(-1);
    if (last && last.kind === x.kind && x.at - last.to <= 50) {
      last.to = x.at;
      last.rows += x.n;
      if (last.ids.length < 3) last.ids.push(x.id);
    } else runs.push({ kind: x.kind, from: x.at, to: x.at, rows: x.n, ids: [x.id] });
  }
  const lines = [`  rows beyond the published copies: ${extra.reduce((a, x) => a + x.n, 0)}`];
  for (const r of runs.slice(0, limit)) {
    const times = await ch.client.query({
      query: `SELECT groupUniqArray(10)(toString(toStartOfSecond(ingested_at))) AS t FROM
        (SELECT ingested_at FROM usage_events WHERE event_id IN {ids:Array(String)}
         UNION ALL SELECT ingested_at FROM log_events WHERE event_id IN {ids:Array(String)})`,
      query_params: { ids: r.ids },
      format: 'JSONEachRow',
    });
    const [t] = await times.json<{ t: string[] }>();
    lines.push(
      `    ${r.kind}: ${r.rows} extra rows, published positions ${r.from}-${r.to}, e.g. ${r.ids.join(' ')}, stored at ${(t?.t ?? []).sort().join(' ')}`,
    );
    // The batches that inserted the run's first event (test_ingest_deliveries, when the test records them).
    const via = await ch.client
      .query({
        query: `SELECT delivery, count() AS n FROM test_ingest_deliveries WHERE event_id = {id:String}
          GROUP BY delivery ORDER BY delivery`,
        query_params: { id: r.ids[0] },
        format: 'JSONEachRow',
      })
      .then((rs) => rs.json<{ delivery: string; n: string | number }>())
      .catch(() => []);
    if (via.length > 0) {
      lines.push(`      ${r.ids[0]} inserted by ${via.map((v) => `${v.delivery} (${v.n}x)`).join(', ')}`);
    }
  }
  return lines;
}
