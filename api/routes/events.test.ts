import { describe, expect, it } from 'vitest';
import { PayloadTooLarge, ValidationError } from '../../core/errors.ts';
import { type ParsedEvent, parseEvent } from '../../core/events.ts';
import { MAX_EVENTS, parseBody, teamRefusal } from './events.ts';

describe('parseBody', () => {
  it('reads a JSON array or NDJSON', () => {
    expect(parseBody('[{"a":1},{"b":2}]')).toEqual([{ a: 1 }, { b: 2 }]);
    expect(parseBody('{"a":1}\n\n{"b":2}\r\n')).toEqual([{ a: 1 }, { b: 2 }]);
  });
  it('refuses what is neither, naming the body', () => {
    expect(() => parseBody('')).toThrow(ValidationError);
    expect(() => parseBody('[1,')).toThrow(/body: is not valid JSON/);
    expect(() => parseBody('{"a":1}\nnope')).toThrow(/body: line 2 is not valid JSON/);
  });
  it('limits the number of events', () => {
    expect(() => parseBody(JSON.stringify(new Array(MAX_EVENTS + 1).fill({})))).toThrow(PayloadTooLarge);
    expect(parseBody(JSON.stringify(new Array(MAX_EVENTS).fill({})))).toHaveLength(MAX_EVENTS);
  });
});

describe('teamRefusal', () => {
  const parsed = (o: object): ParsedEvent => {
    const r = parseEvent(o, Date.parse('2025-01-03T00:00:00Z'));
    if (!r.ok) throw new Error(r.error);
    return r.event;
  };
  const usage = (team: string) =>
    parsed({
      event_id: `e-${team}`,
      type: 'activity',
      timestamp: '2025-01-02T10:00:00Z',
      user_id: 'u1',
      team_id: team,
      service: 'billing',
    });
  const log = parsed({
    event_id: 'l-1',
    type: 'log',
    timestamp: '2025-01-02T10:00:00Z',
    severity: 'info',
    service: 'billing',
    message: 'hello',
  });

  it('lets an unbound caller write any team and logs', () => {
    expect(teamRefusal({ teamId: undefined }, usage('t2'))).toBeUndefined();
    expect(teamRefusal({ teamId: undefined }, log)).toBeUndefined();
  });
  it('lets a bound caller write its own team only, naming the field otherwise', () => {
    expect(teamRefusal({ teamId: 't1' }, usage('t1'))).toBeUndefined();
    expect(teamRefusal({ teamId: 't1' }, usage('t2'))).toBe(
      'team_id: this credential may only write team t1',
    );
    expect(teamRefusal({ teamId: 't1' }, usage('T1'))).toMatch(/^team_id: /);
    expect(teamRefusal({ teamId: 't1' }, log)).toMatch(/^type: log events are platform-wide/);
  });
});
