// The ingestion ledger's arrivals: what each Kafka batch and each POST /events request brought, valid or not,
// as rows keyed by (day, team, service). Counting is ClickHouse's (exact sets, migration 0009); this module
// only says which event each arrival is, where it came from, and under which key it counts.
import { randomUUID } from 'node:crypto';
import type { ClickHouse } from '../clickhouse/client.ts';
import { type Arrival, insertArrivals } from '../clickhouse/queries/ingest-ledger.ts';
import { LIMITS, MAX_FUTURE_MS, MIN_TIMESTAMP_MS, parseTimestamp } from '../core/events.ts';
import type { HttpArrivals, HttpLedger } from '../core/ledger.ts';
import { type Batch, batchToken } from './batcher.ts';
import { reasonCategory } from './metrics.ts';

/** The team of events without a valid team_id, and of log events (which belong to no team). */
export const NO_TEAM = '(none)';
export const LOGS_TEAM = '(logs)';
/** The service of events without a valid one. */
export const NO_SERVICE = '(none)';

const utf8 = new TextDecoder('utf-8', { fatal: true });

const isStr = (v: unknown, max: number): v is string =>
  typeof v === 'string' && v.length >= 1 && v.length <= max;

function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * Key and identity of a rejected item, from whatever of it can be read: the event's day when its timestamp is
 * valid (else the arrival's), its team and service when valid (else `(none)`), its event_id when valid (else
 * the delivery, so each unidentifiable copy counts once per place it came from).
 */
export function ofRejected(
  raw: unknown,
  delivery: string,
  arrivalMs: number,
): Pick<Arrival, 'day' | 'team_id' | 'service' | 'identity'> {
  const o =
    typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
  let day = utcDay(arrivalMs);
  if (typeof o.timestamp === 'string') {
    const ts = parseTimestamp(o.timestamp);
    if (typeof ts === 'number' && ts >= MIN_TIMESTAMP_MS && ts <= arrivalMs + MAX_FUTURE_MS) day = utcDay(ts);
  }
  return {
    day,
    team_id: o.type === 'log' ? LOGS_TEAM : isStr(o.team_id, LIMITS.id) ? o.team_id : NO_TEAM,
    service: isStr(o.service, LIMITS.service) ? o.service : NO_SERVICE,
    identity: isStr(o.event_id, LIMITS.eventId) ? o.event_id : delivery,
  };
}

/** A dead letter's bytes as JSON, when they are (the reason may concern a field, not the framing). */
function parseValue(value: Buffer | null): unknown {
  if (value === null || value.length === 0) return undefined;
  try {
    return JSON.parse(utf8.decode(value));
  } catch {
    return undefined;
  }
}

/**
 * Where a Kafka batch's valid events came from: each one's delivery is this, then `/u<i>` (or `/l<i>`), i its
 * place among the batch's valid events of its kind. The batch's offset range fixes it, so a re-formed batch
 * (same range, same messages) has the same deliveries. They are recorded by the batch's own insert
 * (clickhouse/inserts.ts, EncodedRows), not here.
 */
export function batchDelivery(batch: Batch): string {
  return `kafka:${batchToken(batch)}`;
}

/** The arrivals of one Kafka batch recorded apart from its insert: its dead letters, each its own delivery. */
export function batchArrivals(batch: Batch, arrivalMs: number): Arrival[] {
  const out: Arrival[] = [];
  for (const d of batch.dead) {
    const delivery = `kafka:${batch.topic}/${batch.partition}/${d.offset}`;
    out.push({
      ...ofRejected(parseValue(d.value), delivery, arrivalMs),
      outcome: 'rejected',
      reason: reasonCategory(d.reason),
      delivery,
    });
  }
  return out;
}

/**
 * Records a Kafka batch's dead letters, with a token derived from the batch's own: a re-formed batch adds
 * nothing. Its valid events are recorded by its insert.
 */
export async function recordBatch(ch: ClickHouse, batch: Batch, arrivalMs = Date.now()): Promise<void> {
  await insertArrivals(ch, batchArrivals(batch, arrivalMs), `ledger/${batchToken(batch)}`);
}

/**
 * The arrivals of one POST /events request, whose delivery is the request: a copy of an event in another
 * request is a duplicate, two copies in one request are one arrival (the route stores them once).
 */
export function requestArrivals(a: HttpArrivals, request: string): Arrival[] {
  const delivery = `http:${request}`;
  const out: Arrival[] = [];
  const own = (x: Pick<Arrival, 'team_id'>) => (a.team === undefined ? x.team_id : a.team);
  if (!a.viaKafka) {
    // A literal per event, no spreads: a request holds up to 10,000 of them.
    for (const { event: e } of a.accepted) {
      const team_id = a.team ?? (e.kind === 'usage' ? e.row.team_id : LOGS_TEAM);
      const day = e.row.timestamp.slice(0, 10);
      out.push({
        day,
        team_id,
        service: e.row.service,
        outcome: 'accepted',
        reason: '',
        identity: e.row.event_id,
        delivery,
      });
    }
  }
  for (const r of a.rejected) {
    const k = ofRejected(a.values[r.index], `${delivery}/${r.index}`, a.nowMs);
    out.push({ ...k, team_id: own(k), outcome: 'rejected', reason: reasonCategory(r.error), delivery });
  }
  return out;
}

/** The recorder POST /events calls once its events are durable. */
export function httpLedger(ch: ClickHouse): HttpLedger {
  return async (a) => {
    const request = randomUUID();
    await insertArrivals(ch, requestArrivals(a, request), `ledger/http/${request}`);
  };
}
