// Signatures verify only for the same secret, body and a recent timestamp.
import { describe, expect, it } from 'vitest';
import { signPayload, verifySignature } from './signature.ts';

describe('webhook signature', () => {
  const body = '{"job_id":"j1","status":"completed"}';
  const header = signPayload('whsec_a', body, 1_800_000_000);

  it('verifies the signed body within the tolerance', () => {
    expect(header).toMatch(/^t=1800000000,v1=[0-9a-f]{64}$/);
    expect(verifySignature('whsec_a', body, header, 1_800_000_100)).toBe(true);
  });

  it('refuses another secret, a changed body, an old timestamp or a mangled header', () => {
    expect(verifySignature('whsec_b', body, header, 1_800_000_000)).toBe(false);
    expect(verifySignature('whsec_a', `${body} `, header, 1_800_000_000)).toBe(false);
    expect(verifySignature('whsec_a', body, header, 1_800_000_301)).toBe(false);
    expect(
      verifySignature('whsec_a', body, header.replace('t=1800000000', 't=1800000001'), 1_800_000_000),
    ).toBe(false);
    expect(verifySignature('whsec_a', body, 'v1=00', 1_800_000_000)).toBe(false);
  });
});
