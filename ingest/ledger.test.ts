// Which event each arrival is, where it came from and under which key it counts: pure logic, no engine.
import { describe, expect, it } from 'vitest';
import { encodeLog, encodeUsage } from '../clickhouse/inserts.ts';
import type { UsageRow } from '../core/events.ts';
import type { Batch } from './batcher.ts';
import { batchArrivals, batchDelivery, ofRejected, requestArrivals } from './ledger.ts';

const ARRIVAL = Date.UTC(2026, 11, 5, 12);
const row: UsageRow = {
  event_id: 'e1',
  type: 'activity',
  timestamp: '2025-01-02 10:00:00.000',
  user_id: 'u',
  team_id: 't1',
  service: 's',
  session_id: '',
  attributes: {},
};

describe('ofRejected', () => {
  it('takes the valid parts of a broken event', () => {
    expect(
      ofRejected(
        { event_id: 'x', timestamp: '2025-01-02T23:30:00-01:00', team_id: 't', service: 's' },
        'd',
        ARRIVAL,
      ),
    ).toEqual({ day: '2025-01-03', team_id: 't', service: 's', identity: 'x' });
  });

  it('falls back to the arrival day, (none) and the delivery', () => {
    const fallback = { day: '2026-12-05', team_id: '(none)', service: '(none)', identity: 'd' };
    expect(ofRejected(42, 'd', ARRIVAL)).toEqual(fallback);
    expect(ofRejected(undefined, 'd', ARRIVAL)).toEqual(fallback);
    expect(ofRejected(['x'], 'd', ARRIVAL)).toEqual(fallback);
    expect(
      ofRejected(
        { event_id: 'x'.repeat(129), timestamp: '1999-12-31T00:00:00Z', team_id: '', service: 7 },
        'd',
        ARRIVAL,
      ),
    ).toEqual(fallback);
    // More than 24 hours ahead of the arrival is no valid timestamp either.
    expect(ofRejected({ timestamp: '2026-12-07T00:00:00Z' }, 'd', ARRIVAL).day).toBe('2026-12-05');
  });

  it('counts logs under (logs)', () => {
    expect(ofRejected({ type: 'log', team_id: 't', service: 's' }, 'd', ARRIVAL).team_id).toBe('(logs)');
  });
});

describe('batchArrivals', () => {
  const batch: Batch = {
    topic: 'top',
    partition: 3,
    firstOffset: '10',
    lastOffset: '13',
    count: 4,
    bytes: 100,
    usage: [encodeUsage(row), encodeUsage(row)],
    logs: [
      encodeLog({
        event_id: 'l1',
        timestamp: '2025-01-02 00:00:00.000',
        severity: 'info',
        service: 's',
        message: '',
      }),
    ],
    dead: [{ offset: '12', reason: 'not valid JSON: x', key: null, value: Buffer.from('{') }],
  };

  it('gives each dead letter its offset as delivery; valid events are recorded by their insert', () => {
    expect(batchArrivals(batch, ARRIVAL)).toEqual([
      {
        day: '2026-12-05',
        team_id: '(none)',
        service: '(none)',
        outcome: 'rejected',
        reason: 'not_json',
        identity: 'kafka:top/3/12',
        delivery: 'kafka:top/3/12',
      },
    ]);
  });

  it("fixes the valid events' deliveries by the batch's range, the same for a re-formed batch", () => {
    expect(batchDelivery(batch)).toBe('kafka:top/3/10-13');
    expect(batchDelivery({ ...batch })).toBe(batchDelivery(batch));
    expect(batchArrivals({ ...batch }, ARRIVAL)).toEqual(batchArrivals(batch, ARRIVAL));
  });
});

describe('requestArrivals', () => {
  const base = {
    values: [{ event_id: 'e1' }, { event_id: 'bad', team_id: 't9', service: 's' }],
    rejected: [{ index: 1, error: 'type: is required' }],
    accepted: [{ raw: {}, event: { kind: 'usage' as const, row } }],
    viaKafka: false,
    team: undefined,
    nowMs: ARRIVAL,
  };

  it('records accepted and rejected events, the request being the delivery', () => {
    expect(requestArrivals(base, 'r')).toEqual([
      {
        day: '2025-01-02',
        team_id: 't1',
        service: 's',
        outcome: 'accepted',
        reason: '',
        identity: 'e1',
        delivery: 'http:r',
      },
      {
        day: '2026-12-05',
        team_id: 't9',
        service: 's',
        outcome: 'rejected',
        reason: 'field_type',
        identity: 'bad',
        delivery: 'http:r',
      },
    ]);
  });

  it('leaves accepted events to the ingester through Kafka', () => {
    expect(requestArrivals({ ...base, viaKafka: true }, 'r').map((a) => a.outcome)).toEqual(['rejected']);
  });

  it("counts a team-bound credential's events under its team", () => {
    expect(requestArrivals({ ...base, team: 't1' }, 'r').map((a) => a.team_id)).toEqual(['t1', 't1']);
  });
});
