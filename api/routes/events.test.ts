import { describe, expect, it } from 'vitest';
import { PayloadTooLarge, ValidationError } from '../../core/errors.ts';
import { eventJsonSchemas } from '../../core/event-schemas.ts';
import { type ParsedEvent, parseEvent } from '../../core/events.ts';
import type { EventSink } from '../../core/sink.ts';
import { eventRoutes, MAX_EVENTS, parseBody, teamRefusal } from './events.ts';

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

describe('the OpenAPI document of POST /events', () => {
  // Only the document is built: no request reaches the sink.
  const doc = eventRoutes({} as EventSink).getOpenAPI31Document({
    openapi: '3.1.0',
    info: { title: 'test', version: '0' },
  });
  const schemas = (doc.components?.schemas ?? {}) as Record<string, Record<string, unknown>>;

  it('has UsageEvent and LogEvent from the zod event schema, as schemas/*.json publish them', () => {
    const files = eventJsonSchemas();
    const pairs = [
      ['UsageEvent', files['usage-event']],
      ['LogEvent', files['log-event']],
    ] as const;
    for (const [name, file] of pairs) {
      const { $schema: _s, $id: _i, title: _t, ...shape } = file;
      const { example, title, ...component } = schemas[name] ?? {};
      expect(title).toBe(name);
      expect(component, name).toEqual(shape);
      // The example the document shows is an event the parser takes.
      expect(parseEvent(example, Date.UTC(2025, 11, 1)).ok, name).toBe(true);
    }
  });

  it('documents any item as taken: an event, or anything else named in `rejected`', () => {
    const content = doc.paths?.['/events']?.post?.requestBody;
    expect(JSON.stringify(content)).toContain('"$ref":"#/components/schemas/EventsBody"');
    expect(JSON.stringify(schemas.EventsBody)).toContain(`"maxItems":${MAX_EVENTS}`);
    const item = schemas.EventItem?.anyOf as Record<string, unknown>[];
    expect(item.map((s) => s.$ref ?? 'anything')).toEqual([
      '#/components/schemas/UsageEvent',
      '#/components/schemas/LogEvent',
      'anything',
    ]);
    // "Anything else" has no type: no body item is refused by the document.
    expect(item[2]?.type).toBeUndefined();
  });
});
