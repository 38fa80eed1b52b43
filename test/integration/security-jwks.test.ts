// JWKS rotation against a local identity provider (node:http on 127.0.0.1, keys made with jose): keys cached,
// a new kid picked up after the refetch cooldown, a removed key refused, and cached keys kept while the IdP is
// down. The cache's clock is injected, so no test waits for a real cooldown.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthFailure } from '../../api/auth/failure.ts';
import { JwksCache } from '../../api/auth/jwks.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import { Unavailable } from '../../core/errors.ts';
import { type IdpKey, type JwksServer, makeKey, signWith, startJwksServer } from './security-jwks-server.ts';

const SECRET = 'jwks-test-secret-jwks-test-secret-0123456789';

describe('security: JWKS rotation', () => {
  let idp: JwksServer;
  let k1: IdpKey;
  const clock = { t: Date.now() };
  const cache = () =>
    new JwksCache({ url: idp.url, now: () => clock.t, cooldownMs: 30_000, maxAgeMs: 600_000 });
  let auth: ReturnType<typeof createAuthenticator>;
  const check = (token: string) => auth(`Bearer ${token}`, undefined);
  const reason = (token: string) =>
    check(token).then(
      () => 'accepted',
      (err: unknown) => (err instanceof AuthFailure ? err.reason : String(err)),
    );

  beforeAll(async () => {
    k1 = await makeKey('k1');
    idp = await startJwksServer([k1, await makeKey('e1', 'ES256'), await makeKey('d1', 'EdDSA')]);
    auth = createAuthenticator({ secret: SECRET, issuer: undefined, audience: undefined, jwks: cache() });
  });
  afterAll(() => idp?.close());

  it('verifies RS256, ES256 and EdDSA keys by kid and fetches the set once', async () => {
    for (const k of idp.keys)
      expect((await check(await signWith(k, { sub: `s-${k.kid}` }))).sub).toBe(`s-${k.kid}`);
    expect(idp.fetches).toBe(1);
  });

  it('rotates: a new kid after the cooldown, the removed key refused, random kids cannot hammer the IdP', async () => {
    const old = await signWith(k1, { sub: 'old' });
    const k2 = await makeKey('k2');
    idp.keys = [k2];
    const fresh = await signWith(k2, { sub: 'new' });
    const before = idp.fetches;
    // Within the cooldown of the first fetch the new kid is not looked up yet.
    expect(await reason(fresh)).toBe('unknown-kid');
    expect(idp.fetches).toBe(before);
    clock.t += 31_000;
    expect(await reason(fresh)).toBe('accepted');
    expect(idp.fetches).toBe(before + 1);
    expect(await reason(old)).toBe('unknown-kid');
    for (let i = 0; i < 20; i++)
      expect(await reason(await signWith(await makeKey(`rnd${i}`, 'ES256'), { sub: 'x' }))).toBe(
        'unknown-kid',
      );
    expect(idp.fetches).toBe(before + 1);
  });

  it('keeps the cached keys while the IdP is down, and picks up a new key once it is back', async () => {
    const k2 = idp.keys[0] as IdpKey;
    idp.down = true;
    const before = idp.fetches;
    clock.t += 700_000; // past the cache's max age: a refresh is attempted and fails
    expect(await reason(await signWith(k2, { sub: 'during-outage' }))).toBe('accepted');
    expect(idp.fetches).toBe(before + 1);
    idp.down = false;
    const k3 = await makeKey('k3');
    idp.keys = [k3];
    clock.t += 31_000;
    expect(await reason(await signWith(k3, { sub: 'after' }))).toBe('accepted');
  });

  it('with no keys ever fetched and the IdP down, answers unavailable rather than a false 401', async () => {
    idp.down = true;
    const cold = createAuthenticator({
      secret: SECRET,
      issuer: undefined,
      audience: undefined,
      jwks: cache(),
    });
    await expect(cold(`Bearer ${await signWith(k1, { sub: 'x' })}`, undefined)).rejects.toBeInstanceOf(
      Unavailable,
    );
    idp.down = false;
  });
});
