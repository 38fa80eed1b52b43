import { describe, expect, it } from 'vitest';
import {
  cloudAttributesFromHeaders,
  cloudEventId,
  fromStructured,
  isCloudEventsMediaType,
  parseCloudEventsBody,
} from './cloudevents.ts';
import { parseEvent } from './events.ts';

const ce = {
  specversion: '1.0',
  id: 'a-1',
  source: '/billing/eu-1',
  type: 'com.example.billing.session_start',
  time: '2025-01-02T10:00:00Z',
  datacontenttype: 'application/json',
  data: { user_id: 'u1', team_id: 't1', service: 'billing', session_id: 's1' },
};

describe('CloudEvents', () => {
  it('maps a structured CloudEvent onto the event schema, event_id from (source, id)', () => {
    const m = fromStructured(ce);
    expect(m).toEqual({
      ok: true,
      raw: {
        user_id: 'u1',
        team_id: 't1',
        service: 'billing',
        session_id: 's1',
        event_id: cloudEventId('/billing/eu-1', 'a-1'),
        type: 'session_start',
        timestamp: '2025-01-02T10:00:00Z',
      },
    });
    if (m.ok) expect(parseEvent(m.raw, Date.UTC(2025, 5, 1)).ok).toBe(true);
    expect(
      fromStructured({ ...ce, type: 'log', data: { severity: 'info', service: 's', message: 'm' } }).ok,
    ).toBe(true);
  });

  it('event_id: the same (source, id) is the same event; another source or id is another', () => {
    const id = cloudEventId('/billing/eu-1', 'a-1');
    expect(id).toMatch(/^ce-[0-9a-f]{40}$/);
    expect(cloudEventId('/billing/eu-1', 'a-1')).toBe(id);
    expect(cloudEventId('/billing/eu-2', 'a-1')).not.toBe(id);
    expect(cloudEventId('/billing/eu-1', 'a-2')).not.toBe(id);
    // The pair is not simply concatenated: ("a", "bc") and ("ab", "c") differ.
    expect(cloudEventId('a', 'bc')).not.toBe(cloudEventId('ab', 'c'));
  });

  it('refuses a CloudEvent without time, id, source or a known type, or with data that is not an object', () => {
    const { time: _t, ...noTime } = ce;
    expect(fromStructured(noTime)).toEqual({ ok: false, error: 'time: is required for a CloudEvent' });
    const { id: _i, ...noId } = ce;
    expect(fromStructured(noId)).toEqual({ ok: false, error: 'id: is required for a CloudEvent' });
    const { source: _s, ...noSource } = ce;
    expect(fromStructured(noSource)).toEqual({ ok: false, error: 'source: is required for a CloudEvent' });
    const unknown = fromStructured({ ...ce, type: 'com.example.purchase' });
    expect(!unknown.ok && unknown.error.startsWith('type:')).toBe(true);
    const noData = fromStructured({ ...ce, data: [1] });
    expect(!noData.ok && noData.error.startsWith('data:')).toBe(true);
    expect(fromStructured({ ...ce, specversion: '0.3' }).ok).toBe(false);
    expect(fromStructured('nope').ok).toBe(false);
  });

  it('reads binary-mode attributes from ce_* headers (Buffers, as Kafka gives them)', () => {
    const headers = {
      ce_specversion: Buffer.from('1.0'),
      ce_id: Buffer.from('a-1'),
      ce_source: '/billing/eu-1',
      ce_type: [Buffer.from('session_start')],
      ce_time: Buffer.from('2025-01-02T10:00:00Z'),
      traceparent: Buffer.from('00-abc'),
    };
    expect(cloudAttributesFromHeaders(headers)).toEqual({
      specversion: '1.0',
      id: 'a-1',
      source: '/billing/eu-1',
      type: 'session_start',
      time: '2025-01-02T10:00:00Z',
    });
    expect(cloudAttributesFromHeaders({ traceparent: Buffer.from('x') })).toBeUndefined();
    expect(cloudAttributesFromHeaders(undefined)).toBeUndefined();
  });

  it('knows its media types and bodies', () => {
    expect(isCloudEventsMediaType('application/cloudevents+json; charset=utf-8')).toBe('one');
    expect(isCloudEventsMediaType('application/cloudevents-batch+json')).toBe('batch');
    expect(isCloudEventsMediaType('application/json')).toBeUndefined();
    expect(parseCloudEventsBody(JSON.stringify(ce), 'one', 10)).toHaveLength(1);
    expect(parseCloudEventsBody(JSON.stringify([ce, ce]), 'batch', 10)).toHaveLength(2);
    expect(() => parseCloudEventsBody(JSON.stringify([ce]), 'one', 10)).toThrow(/one CloudEvent/);
    expect(() => parseCloudEventsBody(JSON.stringify(ce), 'batch', 10)).toThrow(/JSON array/);
    expect(() => parseCloudEventsBody(JSON.stringify([ce, ce, ce]), 'batch', 2)).toThrow(/at most 2/);
  });
});
