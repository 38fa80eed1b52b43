import { describe, expect, it } from 'vitest';
import { decodeMessage, REASONS } from './decode.ts';

const now = Date.UTC(2025, 5, 1);
const event = {
  event_id: 'd-1',
  type: 'activity',
  timestamp: '2025-01-02T10:00:00Z',
  user_id: 'u1',
  team_id: 't1',
  service: 'billing',
};
const json = Buffer.from(JSON.stringify(event));

function confluent(schemaId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(0, 0);
  header.writeUInt32BE(schemaId, 1);
  return Buffer.concat([header, payload]);
}

describe('decodeMessage', () => {
  it('accepts plain JSON and Confluent wire format (magic 0, schema id, JSON) alike', () => {
    const plain = decodeMessage(json, now);
    expect(plain.ok).toBe(true);
    for (const id of [1, 100_007, 0xffffffff]) expect(decodeMessage(confluent(id, json), now)).toEqual(plain);
  });

  it('names a tombstone, bad bytes and a JSON array with their reasons', () => {
    expect(decodeMessage(null, now)).toEqual({ ok: false, error: 'empty' });
    expect(decodeMessage(Buffer.alloc(0), now)).toEqual({ ok: false, error: 'empty' });
    const latin1 = Buffer.from('{"service":"caf\xe9"}', 'latin1');
    expect(decodeMessage(latin1, now)).toEqual({ ok: false, error: REASONS.encoding });
    expect(decodeMessage(confluent(3, latin1), now)).toEqual({ ok: false, error: REASONS.encoding });
    const array = decodeMessage(Buffer.from(JSON.stringify([event, event])), now);
    expect(array.ok).toBe(false);
    if (!array.ok) expect(array.error).toBe(`${REASONS.notObject} (got an array)`);
    const scalar = decodeMessage(Buffer.from('42'), now);
    if (!scalar.ok) expect(scalar.error.startsWith('not an object')).toBe(true);
  });

  it('reads a binary-mode CloudEvent: attributes in ce_* headers, data as the value', () => {
    const headers = {
      ce_specversion: Buffer.from('1.0'),
      ce_id: Buffer.from('x-1'),
      ce_source: Buffer.from('/svc'),
      ce_type: Buffer.from('com.example.activity'),
      ce_time: Buffer.from('2025-01-02T10:00:00Z'),
    };
    const data = Buffer.from(JSON.stringify({ user_id: 'u1', team_id: 't1', service: 'billing' }));
    const r = decodeMessage(data, now, headers);
    expect(r.ok && r.event.kind === 'usage' && r.event.row.event_id.startsWith('ce-')).toBe(true);
    const { ce_time: _t, ...noTime } = headers;
    expect(decodeMessage(data, now, noTime)).toEqual({
      ok: false,
      error: 'time: is required for a CloudEvent',
    });
    // Without ce_specversion the headers are not a CloudEvent's: the value must be a whole event.
    const { ce_specversion: _v, ...notCloud } = headers;
    expect(decodeMessage(data, now, notCloud).ok).toBe(false);
  });

  it('keeps the other reasons: not JSON, too large, a field', () => {
    const notJson = decodeMessage(Buffer.from('{nope'), now);
    expect(!notJson.ok && notJson.error.startsWith('not valid JSON')).toBe(true);
    const large = decodeMessage(Buffer.alloc(600 * 1024, 0x20), now);
    expect(!large.ok && large.error.startsWith('message too large')).toBe(true);
    const field = decodeMessage(Buffer.from(JSON.stringify({ ...event, user_id: '' })), now);
    expect(!field.ok && field.error.startsWith('user_id:')).toBe(true);
    // A zero byte not followed by a schema id and JSON is not Confluent framing, just bad bytes.
    const zero = decodeMessage(Buffer.from([0, 1, 2]), now);
    expect(zero.ok).toBe(false);
  });
});
