// The quota's clock arithmetic and the in-process lock that makes "count + insert" one step.
import { describe, expect, it } from 'vitest';
import { KeyedMutex } from './lock.ts';
import { secondsToUtcMidnight, utcDay } from './quota.ts';

describe('quota day', () => {
  it('counts seconds to the next UTC midnight, never 0', () => {
    expect(secondsToUtcMidnight(Date.parse('2025-03-04T23:59:30Z'))).toBe(30);
    expect(secondsToUtcMidnight(Date.parse('2025-03-04T00:00:00Z'))).toBe(86_400);
    expect(secondsToUtcMidnight(Date.parse('2025-03-04T23:59:59.900Z'))).toBe(1);
    expect(utcDay(Date.parse('2025-03-04T23:59:59.999Z'))).toBe('2025-03-04');
  });
});

describe('KeyedMutex', () => {
  it('runs calls of one key one at a time, in order, and other keys alongside', async () => {
    const m = new KeyedMutex();
    const log: string[] = [];
    const step = (key: string, name: string, ms: number) =>
      m.run(key, async () => {
        log.push(`${name}+`);
        await new Promise((r) => setTimeout(r, ms));
        log.push(`${name}-`);
      });
    await Promise.all([step('a', 'a1', 20), step('a', 'a2', 1), step('b', 'b1', 5)]);
    expect(log).toEqual(['a1+', 'b1+', 'b1-', 'a1-', 'a2+', 'a2-']);
  });

  it('releases the key when a call throws', async () => {
    const m = new KeyedMutex();
    await expect(m.run('k', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await m.run('k', async () => 7)).toBe(7);
  });
});
