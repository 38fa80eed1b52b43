// A held day's page orders ids as the engine does (their UTF-8 bytes), whatever characters they hold.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { byteOrder } from './log-live-days.ts';

describe('byteOrder', () => {
  it('orders strings as their UTF-8 bytes compare, surrogate pairs and U+E000-U+FFFF included', () => {
    // Characters from the ranges where UTF-16 and UTF-8 orders part: ASCII, U+E000-U+FFFF, and past U+FFFF.
    const char = fc.oneof(
      fc.constantFrom('a', 'b', '-', '0'),
      fc.integer({ min: 0xe000, max: 0xfffd }).map((c) => String.fromCharCode(c)),
      fc.integer({ min: 0x10000, max: 0x10ffff }).map((c) => String.fromCodePoint(c)),
      fc.integer({ min: 0x80, max: 0xd7ff }).map((c) => String.fromCharCode(c)),
    );
    const text = fc.array(char, { maxLength: 6 }).map((cs) => cs.join(''));
    fc.assert(
      fc.property(text, text, (a, b) => {
        expect(Math.sign(byteOrder(a, b))).toBe(Buffer.compare(Buffer.from(a), Buffer.from(b)));
      }),
      { numRuns: 2_000 },
    );
  });

  it('puts a prefix first', () => {
    expect(byteOrder('log-1', 'log-10')).toBeLessThan(0);
    expect(byteOrder('log-2', 'log-10')).toBeGreaterThan(0);
    expect(byteOrder('same', 'same')).toBe(0);
  });
});
