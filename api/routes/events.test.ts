import { describe, expect, it } from 'vitest';
import { PayloadTooLarge, ValidationError } from '../../core/errors.ts';
import { MAX_EVENTS, parseBody } from './events.ts';

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
