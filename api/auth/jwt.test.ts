// The iat rule of the verifier, on the shared-secret path (pure: no network, a fixed clock).
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { AuthFailure } from './failure.ts';
import { createJwtVerifier, MAX_IAT_AHEAD_SECONDS } from './jwt.ts';

const SECRET = 'jwt-unit-test-secret-jwt-unit-test-secret-0123';
const NOW = Date.UTC(2026, 0, 1) / 1000;
const verify = createJwtVerifier({
  secret: SECRET,
  issuer: undefined,
  audience: undefined,
  now: () => NOW * 1000,
});
const sign = (iat: number | undefined) =>
  new SignJWT({ sub: 'u', exp: NOW + 3600, ...(iat === undefined ? {} : { iat }) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .sign(new TextEncoder().encode(SECRET));

describe('JWT iat', () => {
  it('accepts a token issued now, a little ahead (clock skew) or without iat', async () => {
    for (const iat of [NOW, NOW - 86_400, NOW + MAX_IAT_AHEAD_SECONDS, undefined]) {
      await expect(verify(await sign(iat))).resolves.toMatchObject({ sub: 'u' });
    }
  });

  it(`refuses a token issued more than ${MAX_IAT_AHEAD_SECONDS} s in the future`, async () => {
    for (const iat of [NOW + MAX_IAT_AHEAD_SECONDS + 1, NOW + 10 * 365 * 86_400]) {
      const refused = await verify(await sign(iat)).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(AuthFailure);
      expect((refused as AuthFailure).message).toBe('token issued in the future (iat)');
      expect((refused as AuthFailure).reason).toBe('not-yet-valid');
    }
  });
});
