import { describe, expect, it } from 'vitest';
import { parseEvent } from '../core/events.ts';
import { batchToken, PartitionBuffer } from './batcher.ts';

const ok = parseEvent({
  event_id: 'e',
  type: 'activity',
  timestamp: '2025-01-01T00:00:00Z',
  user_id: 'u',
  team_id: 't',
  service: 's',
});

function item(offset: number, bytes = 10, result = ok) {
  return { offset: String(offset), bytes, result, key: null, value: Buffer.from('x') };
}

describe('PartitionBuffer', () => {
  it('is full at the row limit and due at the age limit', () => {
    const b = new PartitionBuffer('t', 0, { rows: 3, bytes: 1000, waitMs: 100 });
    b.add(item(5), 0);
    b.add(item(6), 10);
    expect(b.isFull()).toBe(false);
    expect(b.isDue(99)).toBe(false);
    expect(b.isDue(100)).toBe(true);
    b.add(item(7), 20);
    expect(b.isFull()).toBe(true);
  });

  it('is full at the byte limit', () => {
    const b = new PartitionBuffer('t', 0, { rows: 100, bytes: 25, waitMs: 1000 });
    b.add(item(1, 20), 0);
    expect(b.isFull()).toBe(false);
    b.add(item(2, 20), 0);
    expect(b.isFull()).toBe(true);
  });

  it('takes a batch with its offset range and splits good rows from dead letters', () => {
    const b = new PartitionBuffer('topic', 2, { rows: 10, bytes: 1000, waitMs: 1000 });
    b.add(item(10), 0);
    b.add(item(11, 10, { ok: false, error: 'not valid JSON' }), 0);
    b.add(item(12), 0);
    const batch = b.take();
    expect(batch?.firstOffset).toBe('10');
    expect(batch?.lastOffset).toBe('12');
    expect(batch?.usage).toHaveLength(2);
    expect(batch?.dead).toEqual([
      { offset: '11', reason: 'not valid JSON', key: null, value: Buffer.from('x') },
    ]);
    expect(batch && batchToken(batch)).toBe('topic/2/10-12');
    expect(b.take()).toBeNull();
    expect(b.size).toBe(0);
  });
});
