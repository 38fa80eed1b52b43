// Signed links: a link verifies only for its own job, expiry and key; expiry is checked after the MAC.
import { describe, expect, it } from 'vitest';
import { type KeyRing, signLink, verifyLink } from './signing.ts';

const ring: KeyRing = {
  current: 'new',
  keys: new Map([
    ['old', Buffer.alloc(32, 1)],
    ['new', Buffer.alloc(32, 2)],
  ]),
};
const NOW = 1_800_000_000_000;

describe('signed links', () => {
  const link = signLink(ring, 'job-1', NOW / 1000 + 60);

  it('verifies its own job and expiry with the current key id', () => {
    expect(link.kid).toBe('new');
    expect(verifyLink(ring, 'job-1', link, NOW)).toBe('ok');
  });

  it('refuses another job, expiry, key id or a changed signature', () => {
    expect(verifyLink(ring, 'job-2', link, NOW)).toBe('invalid');
    expect(verifyLink(ring, 'job-1', { ...link, exp: link.exp + 1 }, NOW)).toBe('invalid');
    expect(verifyLink(ring, 'job-1', { ...link, kid: 'old' }, NOW)).toBe('invalid');
    expect(verifyLink(ring, 'job-1', { ...link, kid: 'gone' }, NOW)).toBe('invalid');
  });

  it('refuses a signature with any bit of its MAC changed, for every fixture', () => {
    // Changed in the MAC's bytes, not in the text: the last of the 43 base64url characters carries 4 bits and 2
    // unused ones, so swapping it for a neighbour (A for B, say) may leave the MAC as it was (1 link in 16).
    for (let j = 0; j < 64; j++) {
      const jobId = `job-${j}`;
      const own = signLink(ring, jobId, NOW / 1000 + 60);
      const mac = Buffer.from(own.sig, 'base64url');
      expect(mac).toHaveLength(32);
      for (const [byte, bit] of [
        [0, 0x80],
        [j % 32, 1 << (j % 8)],
        [31, 0x01],
      ] as const) {
        const changed = Buffer.from(mac);
        changed[byte] = (changed[byte] ?? 0) ^ bit;
        const sig = changed.toString('base64url');
        expect(verifyLink(ring, jobId, { ...own, sig }, NOW), `${jobId} byte ${byte}`).toBe('invalid');
      }
    }
  });

  it('reports expiry only for a genuine link, and keeps old keys verifying after a rotation', () => {
    expect(verifyLink(ring, 'job-1', link, NOW + 60_000)).toBe('expired');
    const rotated: KeyRing = { ...ring, current: 'old' };
    const older = signLink(rotated, 'job-1', NOW / 1000 + 60);
    expect(older.kid).toBe('old');
    expect(verifyLink(ring, 'job-1', older, NOW)).toBe('ok');
  });
});
