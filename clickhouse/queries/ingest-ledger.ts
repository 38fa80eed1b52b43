// The ingestion ledger (migration 0009): arrivals written by the ingester and the HTTP sink, and the counts of
// GET /ingest/ledger read back. Every count merges exact sets, so it is the same however often a batch, a
// request or an event was replayed.
import type { ClickHouse } from '../client.ts';
import { insertRows } from '../inserts.ts';
import type { BuiltQuery } from './query.ts';

/** One arrival of an event: a row of `ingest_arrivals`, folded into `ingest_ledger` by its view. */
export interface Arrival {
  /** YYYY-MM-DD, UTC. */
  day: string;
  team_id: string;
  service: string;
  outcome: 'accepted' | 'rejected';
  /** The rejection's reason category; '' for accepted events. */
  reason: string;
  /** The event_id, or the delivery for an event without a valid one. */
  identity: string;
  /** Where this copy came from (a Kafka position or an HTTP request): the same on a replay of the same copy. */
  delivery: string;
}

const COLUMNS: [string, ...string[]] = [
  'day',
  'team_id',
  'service',
  'outcome',
  'reason',
  'identity',
  'delivery',
];

/**
 * Records arrivals. `token` must be a pure function of what is recorded (a batch's position in the log), so a
 * re-sent batch's block is dropped by ingest_ledger's window; the counts would not change anyway.
 */
export async function insertArrivals(ch: ClickHouse, rows: readonly Arrival[], token: string): Promise<void> {
  if (rows.length === 0) return;
  const values = rows.map((r) => [r.day, r.team_id, r.service, r.outcome, r.reason, r.identity, r.delivery]);
  await insertRows(ch, 'ingest_arrivals', COLUMNS, values, token);
}

export interface IngestLedgerParams {
  /** First UTC day, YYYY-MM-DD, inclusive. */
  start_date: string;
  /** Last UTC day, YYYY-MM-DD, inclusive. */
  end_date: string;
  team_id?: string | undefined;
  service?: string | undefined;
}

export interface LedgerRow {
  day: string;
  team_id: string;
  service: string;
  received: number;
  stored: number;
  duplicates: number;
  rejected: number;
  rejected_by_reason: Record<string, number>;
}

function where(p: IngestLedgerParams): BuiltQuery {
  let query = 'day BETWEEN {start_date:Date} AND {end_date:Date}';
  const query_params: Record<string, string> = { start_date: p.start_date, end_date: p.end_date };
  if (p.team_id !== undefined) {
    query += ' AND team_id = {team_id:String}';
    query_params.team_id = p.team_id;
  }
  if (p.service !== undefined) {
    query += ' AND service = {service:String}';
    query_params.service = p.service;
  }
  return { query, query_params };
}

// Output aliases differ from the columns: an alias named like a column would replace it in WHERE.
// received is the union of the accepted and rejected sets (an event rejected once and accepted later arrived
// once); rejected the union over reasons. Merged sets, never sums of rows: rows are partial states until merged.
export function buildLedgerTotalsQuery(p: IngestLedgerParams): BuiltQuery {
  const w = where(p);
  const query = `
    SELECT toString(day) AS d, team_id AS team, toString(service) AS svc,
      uniqExactMergeIf(ids, outcome IN ('accepted', 'rejected')) AS received,
      uniqExactMergeIf(ids, outcome = 'stored') AS stored,
      uniqExactMergeIf(deliveries, outcome = 'accepted') - uniqExactMergeIf(ids, outcome = 'accepted') AS duplicates,
      uniqExactMergeIf(ids, outcome = 'rejected') AS rejected
    FROM ingest_ledger
    WHERE ${w.query}
    GROUP BY d, team, svc
    ORDER BY d, team, svc`;
  return { query, query_params: w.query_params };
}

export function buildLedgerReasonsQuery(p: IngestLedgerParams): BuiltQuery {
  const w = where(p);
  const query = `
    SELECT toString(day) AS d, team_id AS team, toString(service) AS svc, toString(reason) AS why,
      uniqExactMerge(ids) AS n
    FROM ingest_ledger
    WHERE ${w.query} AND outcome = 'rejected'
    GROUP BY d, team, svc, why
    ORDER BY d, team, svc, why`;
  return { query, query_params: w.query_params };
}

type Count = string | number;

/** The ledger's rows, by day, team and service. */
export async function ingestLedger(ch: ClickHouse, p: IngestLedgerParams): Promise<LedgerRow[]> {
  // 64-bit counts may arrive as strings (output_format_json_quote_64bit_integers), hence Number().
  const totals = await (await ch.client.query({ ...buildLedgerTotalsQuery(p), format: 'JSONEachRow' })).json<{
    d: string;
    team: string;
    svc: string;
    received: Count;
    stored: Count;
    duplicates: Count;
    rejected: Count;
  }>();
  const reasons = await (
    await ch.client.query({ ...buildLedgerReasonsQuery(p), format: 'JSONEachRow' })
  ).json<{ d: string; team: string; svc: string; why: string; n: Count }>();
  const key = (r: { d: string; team: string; svc: string }) => `${r.d}\u0000${r.team}\u0000${r.svc}`;
  const byKey = new Map<string, Record<string, number>>();
  for (const r of reasons) {
    const k = key(r);
    const m = byKey.get(k) ?? {};
    m[r.why] = Number(r.n);
    byKey.set(k, m);
  }
  return totals.map((r) => ({
    day: r.d,
    team_id: r.team,
    service: r.svc,
    received: Number(r.received),
    stored: Number(r.stored),
    duplicates: Number(r.duplicates),
    rejected: Number(r.rejected),
    rejected_by_reason: byKey.get(key(r)) ?? {},
  }));
}
