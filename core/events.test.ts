import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  isPlainValid,
  LIMITS,
  logSchema,
  parseEvent,
  parseTimestamp,
  toClickHouseTime,
  usageSchema,
  utcTimestamp,
} from './events.ts';

const NOW = Date.UTC(2026, 0, 1);
const usage = {
  event_id: 'e-1',
  type: 'session_start',
  timestamp: '2025-01-02T10:00:00Z',
  user_id: 'u1',
  team_id: 't1',
  service: 'billing',
  session_id: 's1',
};
const log = {
  event_id: 'l-1',
  type: 'log',
  timestamp: '2025-05-21T10:15:30Z',
  severity: 'warning',
  service: 'exporter',
  message: 'Report export failed due to timeout',
};

function error(v: unknown): string {
  const r = parseEvent(v, NOW);
  if (r.ok) throw new Error('expected an error');
  return r.error;
}

describe('parseEvent', () => {
  it('normalises a usage event to UTC milliseconds and ignores unknown fields', () => {
    const r = parseEvent({ ...usage, timestamp: '2025-01-02T12:00:00.123456+02:00', extra: 1 }, NOW);
    expect(r).toEqual({
      ok: true,
      event: {
        kind: 'usage',
        row: { ...usage, timestamp: '2025-01-02 10:00:00.123', attributes: {} },
      },
    });
  });

  it('accepts a log event', () => {
    const r = parseEvent(log, NOW);
    expect(r.ok && r.event.kind).toBe('log');
  });

  it('names the broken field', () => {
    expect(error({ ...usage, user_id: undefined })).toBe('user_id: is required');
    expect(error({ ...usage, user_id: 5 })).toBe('user_id: must be a string');
    expect(error({ ...usage, team_id: '' })).toBe('team_id: must not be empty');
    expect(error({ ...usage, type: 'click' })).toMatch(/^type: must be one of/);
    expect(error({ ...usage, session_id: undefined })).toBe('session_id: is required for session_start');
    expect(error({ ...log, severity: 'fatal' })).toMatch(/^severity: must be one of info, warning, error/);
    expect(error({ ...usage, event_id: 'x'.repeat(129) })).toBe('event_id: must be at most 128 characters');
    expect(error({ ...usage, attributes: { a: 1 } })).toMatch(/^attributes\.a: /);
    expect(error([usage])).toBe('event must be a JSON object');
  });

  it('allows activity without a session', () => {
    expect(parseEvent({ ...usage, type: 'activity', session_id: undefined }, NOW).ok).toBe(true);
  });

  it('bounds timestamps to 2000-01-01 .. now + 24h', () => {
    expect(error({ ...usage, timestamp: '1999-12-31T23:59:59Z' })).toMatch(/before 2000/);
    expect(parseEvent({ ...usage, timestamp: '2026-01-01T23:59:59Z' }, NOW).ok).toBe(true);
    expect(error({ ...usage, timestamp: '2026-01-02T00:00:01Z' })).toMatch(/future/);
  });
});

describe('parseTimestamp', () => {
  it('refuses timestamps without a zone or with impossible dates', () => {
    expect(typeof parseTimestamp('2025-01-02T10:00:00')).toBe('string');
    expect(typeof parseTimestamp('2025-02-30T10:00:00Z')).toBe('string');
    expect(typeof parseTimestamp('2025-01-02T24:00:00Z')).toBe('string');
    expect(typeof parseTimestamp('yesterday')).toBe('string');
  });
  it('applies the zone offset', () => {
    expect(parseTimestamp('2025-01-01T00:30:00-01:00')).toBe(Date.UTC(2025, 0, 1, 1, 30));
  });
});

describe('the fast path of parseEvent', () => {
  // Values at and around every limit, of the right and the wrong type: where the plain check says yes, the
  // zod schema (the one source of the shapes) must say yes too; otherwise the schema decides and words it.
  const text = (max: number) =>
    fc.oneof(
      fc.string({ maxLength: 3 }),
      fc.constantFrom('', 'x'.repeat(max), 'x'.repeat(max + 1)),
      fc.constantFrom(undefined, null, 1, true, ['a'], { a: 'b' }),
    );
  const attributes = fc.oneof(
    fc.constant(undefined),
    fc.dictionary(fc.string({ maxLength: 3 }), fc.oneof(fc.string({ maxLength: 3 }), fc.constant(1))),
    fc.constantFrom(
      null,
      [],
      'a',
      Object.fromEntries(Array.from({ length: LIMITS.attributes + 1 }, (_, i) => [`k${i}`, 'v'])),
      { ['k'.repeat(LIMITS.attributeKey + 1)]: 'v' },
      { k: 'v'.repeat(LIMITS.attributeValue + 1) },
    ),
  );
  const event = fc.record(
    {
      event_id: text(LIMITS.eventId),
      type: fc.constantFrom('user_registered', 'session_start', 'session_end', 'activity', 'log'),
      timestamp: fc.constantFrom('2025-01-02T10:00:00Z', 1, undefined),
      user_id: text(LIMITS.id),
      team_id: text(LIMITS.id),
      service: text(LIMITS.service),
      session_id: text(LIMITS.id),
      attributes,
      severity: fc.constantFrom('info', 'warning', 'error', 'fatal', undefined, 2),
      message: text(LIMITS.message),
    },
    { requiredKeys: ['type'] },
  );

  it('accepts only what the zod schema accepts', () => {
    fc.assert(
      fc.property(event, (e) => {
        const schema = e.type === 'log' ? logSchema : usageSchema;
        if (isPlainValid(e as Record<string, unknown>, e.type)) {
          expect(schema.safeParse(e).success, JSON.stringify(e).slice(0, 300)).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('is read from the schemas: it accepts the common events, so they skip zod', () => {
    // A rule the builder could not read would send every event to zod: still correct, but the fast path gone.
    expect(isPlainValid(usage, usage.type)).toBe(true);
    expect(isPlainValid({ ...usage, attributes: { plan: 'pro' } }, usage.type)).toBe(true);
    expect(isPlainValid(log, log.type)).toBe(true);
    expect(isPlainValid({ ...log, message: '' }, log.type)).toBe(true);
    // And the bounds are the schema's: one past a limit is left to zod.
    expect(isPlainValid({ ...usage, user_id: 'u'.repeat(LIMITS.id + 1) }, usage.type)).toBe(false);
    expect(isPlainValid({ ...log, severity: 'fatal' }, log.type)).toBe(false);
  });
});

describe('utcTimestamp', () => {
  const general = (v: string) => {
    const ms = parseTimestamp(v);
    return typeof ms === 'number' ? { ms, at: toClickHouseTime(ms) } : undefined;
  };

  it('reads the common UTC shapes exactly as the general path', () => {
    for (const v of [
      '2025-01-02T10:00:00Z',
      '2025-01-02T10:00:00.123Z',
      '2024-02-29t23:59:59.999z',
      '2000-01-01 00:00:00Z',
      '9999-12-31T23:59:59Z',
    ])
      expect(utcTimestamp(v), v).toEqual(general(v));
  });

  it('leaves everything else to the general path', () => {
    for (const v of [
      '2025-02-29T10:00:00Z',
      '2025-04-31T10:00:00Z',
      '2025-01-02T24:00:00Z',
      '2025-01-02T10:60:00Z',
      '2025-01-02T10:00:60Z',
      '0099-01-02T10:00:00Z',
      '2025-01-02T10:00:00+00:00',
      '2025-01-02T10:00:00.12Z',
      '2025-01-02T10:00:00.1234Z',
      '2025-1-02T10:00:00Z',
      '2025-01-02X10:00:00Z',
      '2025-01-0aT10:00:00Z',
    ])
      expect(utcTimestamp(v), v).toBeUndefined();
  });

  it('agrees with the general path on any UTC instant', () => {
    fc.assert(
      fc.property(
        fc.date({
          min: new Date(Date.UTC(1000, 0, 1)),
          max: new Date(Date.UTC(9999, 11, 31)),
          noInvalidDate: true,
        }),
        fc.boolean(),
        (d, withMs) => {
          const iso = d.toISOString();
          const v = withMs ? iso : `${iso.slice(0, 19)}Z`;
          expect(utcTimestamp(v)).toEqual(general(v));
        },
      ),
    );
  });
});
