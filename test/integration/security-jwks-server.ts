// A tiny identity provider for the security tests: a node:http JWKS endpoint on 127.0.0.1 whose key set can be
// rotated or taken down, and signing keys made with jose.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';

export interface IdpKey {
  kid: string;
  alg: 'RS256' | 'ES256' | 'EdDSA';
  privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  publicJwk: JWK;
}

export async function makeKey(kid: string, alg: IdpKey['alg'] = 'RS256'): Promise<IdpKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export function signWith(key: IdpKey, claims: Record<string, unknown>, ttlSeconds = 300): Promise<string> {
  return new SignJWT({ scope: 'read:analytics', ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(key.privateKey);
}

export interface JwksServer {
  url: string;
  /** The public keys served now. */
  keys: IdpKey[];
  /** While true, every request fails with 503 (the IdP is down). */
  down: boolean;
  fetches: number;
  close(): Promise<void>;
}

export async function startJwksServer(keys: IdpKey[]): Promise<JwksServer> {
  const state = { keys, down: false, fetches: 0 };
  const server: Server = createServer((_req, res) => {
    state.fetches++;
    if (state.down) {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: state.keys.map((k) => k.publicJwk) }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  });
}
