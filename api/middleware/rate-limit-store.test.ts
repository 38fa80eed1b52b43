// The sliding log on a fake clock: never more than the limit in any window, exact at the window's edge.
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { limitPolicy, SlidingLogStore } from './rate-limit-store.ts';

const stores: SlidingLogStore[] = [];
function store(limit: number, overrides = new Map<string, number>()) {
  const clock = { t: 1_000_000 };
  const s = new SlidingLogStore(limitPolicy(limit, overrides), () => clock.t);
  stores.push(s);
  return { s, clock, admitted: (key = 'k') => s.increment(key).totalHits <= limit };
}
afterEach(() => {
  for (const s of stores.splice(0)) s.shutdown();
});

describe('SlidingLogStore', () => {
  it('admits the limit, refuses the next, and frees a slot exactly a window after the oldest', () => {
    const { s, clock, admitted } = store(100);
    for (let i = 0; i < 100; i++) expect(admitted()).toBe(true);
    expect(admitted()).toBe(false);
    const refused = s.increment('k');
    expect(refused.resetTime?.getTime()).toBe(clock.t + 60_000);
    clock.t += 59_999;
    expect(admitted()).toBe(false);
    clock.t += 1;
    // All 100 were admitted at the same instant, so all 100 slots free together.
    for (let i = 0; i < 100; i++) expect(admitted()).toBe(true);
    expect(admitted()).toBe(false);
  });

  it('lets no more than the limit through across a fixed-window boundary', () => {
    // A fixed window starting at t0 would admit 100 at t0+59s and 100 more at t0+61s: 200 within 2 seconds.
    const { clock, admitted } = store(100);
    clock.t += 59_000;
    let n = 0;
    for (let i = 0; i < 150; i++) n += admitted() ? 1 : 0;
    clock.t += 2_000;
    for (let i = 0; i < 150; i++) n += admitted() ? 1 : 0;
    expect(n).toBe(100);
  });

  it('keeps identities apart and applies overrides per identity', () => {
    const { s } = store(2, new Map([['key:vip', 5]]));
    const count = (key: string) => {
      let n = 0;
      for (let i = 0; i < 10; i++) n += s.increment(key).totalHits <= (key === 'key:vip' ? 5 : 2) ? 1 : 0;
      return n;
    };
    expect(count('jwt::a')).toBe(2);
    expect(count('jwt::b')).toBe(2);
    expect(count('key:vip')).toBe(5);
  });

  it('admits exactly up to the limit in every window, for any arrival times (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 5_000 }), { minLength: 1, maxLength: 300 }), (gaps) => {
        const limit = 7;
        const windowMs = 10_000;
        let t = 0;
        const s = new SlidingLogStore(limitPolicy(limit, new Map(), windowMs), () => t);
        const times: number[] = [];
        const refused: number[] = [];
        for (const g of gaps) {
          t += g;
          if (s.increment('k').totalHits <= limit) times.push(t);
          else refused.push(t);
        }
        s.shutdown();
        // Every admitted request opens a window: count the admitted ones inside it.
        for (const [i, start] of times.entries()) {
          let inside = 0;
          for (let j = i; j < times.length && (times[j] as number) < start + windowMs; j++) inside++;
          if (inside > limit) return false;
        }
        // And it is not too strict: an arrival is refused only when the window ending at it is full.
        return refused.every((r) => times.filter((a) => a > r - windowMs && a <= r).length === limit);
      }),
    );
  });
});
