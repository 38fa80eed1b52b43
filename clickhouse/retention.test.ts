import { describe, expect, it } from 'vitest';
import { type ClickHouse, forApiReads, Retention } from './client.ts';
import { firstRetainedDay, retainedStart } from './retention.ts';

const at = (iso: string) => Date.parse(iso);

describe('firstRetainedDay', () => {
  it('is the day after the one RETENTION_DAYS ago, whatever the hour', () => {
    expect(firstRetainedDay(5, at('2026-03-10T00:00:00Z'))).toBe('2026-03-06');
    expect(firstRetainedDay(5, at('2026-03-10T23:59:59Z'))).toBe('2026-03-06');
    expect(firstRetainedDay(1, at('2026-01-01T12:00:00Z'))).toBe('2026-01-01');
    expect(firstRetainedDay(0, at('2026-03-10T12:00:00Z'))).toBeUndefined();
  });

  it('leaves a storage without retention alone', () => {
    expect(retainedStart({ retention: new Retention() }, undefined)).toBeUndefined();
    expect(retainedStart({ retention: new Retention() }, '2001-01-01')).toBe('2001-01-01');
  });

  it("reaches the API's bounded view of a server connection, applied before or after the view was made", () => {
    const ch = { client: {}, readClient: {}, retention: new Retention() } as unknown as ClickHouse;
    const view = forApiReads(ch);
    expect(view).not.toBe(ch);
    // What applyRetention does once the TTLs are set.
    ch.retention.record(5);
    const now = at('2026-03-10T12:00:00Z');
    expect(retainedStart(view, undefined, now)).toBe('2026-03-06');
    expect(retainedStart(view, '2026-03-08', now)).toBe('2026-03-08');
  });
});
