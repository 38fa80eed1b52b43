// Who is calling: a bearer JWT (api/auth/jwt.ts) or a service API key (X-API-Key, api/auth/key-ring.ts), and what
// they may do. 401 when the caller is not authenticated, 403 when authenticated but not allowed.
import { randomBytes } from 'node:crypto';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import { type ApiKeyRecord, parseKey, secretMatches, unusableReason } from '../../core/api-keys.ts';
import { Forbidden, Unauthenticated } from '../../core/errors.ts';
import { AuthFailure } from '../auth/failure.ts';
import type { JwksCache } from '../auth/jwks.ts';
import { createJwtVerifier } from '../auth/jwt.ts';
import type { AppEnv, Identity } from '../env.ts';

export { CLOCK_TOLERANCE_SECONDS } from '../auth/jwt.ts';

export interface AuthOptions {
  /** HS256 secret; its UTF-8 bytes are the HMAC key. */
  secret: string;
  issuer: string | undefined;
  audience: string | undefined;
  /** The IdP's keys (AUTH_JWKS_URL); without it only HS256 tokens are accepted. */
  jwks?: JwksCache;
  /** API keys by id (the control store's, read per request so a revocation counts at once); without it every X-API-Key is refused. */
  keys?: KeyLookup;
  /** The clock for exp / nbf and key expiry (tests). */
  now?: () => number;
}

/** Finds an API key's record by its id. */
export interface KeyLookup {
  get(id: string): Promise<ApiKeyRecord | undefined>;
}

export type Authenticator = (
  authorization: string | undefined,
  apiKey: string | undefined,
) => Promise<Identity>;

/** One answer for every unusable key, so a caller learns nothing about which keys exist. */
const BAD_KEY = 'invalid API key';
const DECOY: ApiKeyRecord = {
  id: '0000000000000000',
  name: 'decoy',
  scopes: [],
  created_at: '1970-01-01T00:00:00.000Z',
  secret_sha256: randomBytes(32).toString('hex'),
};

export function createAuthenticator(opts: AuthOptions): Authenticator {
  const verifyJwt = createJwtVerifier(opts);
  const now = opts.now ?? Date.now;

  const byKey = async (presented: string): Promise<Identity> => {
    const parsed = parseKey(presented.trim());
    if (!parsed) throw new AuthFailure(BAD_KEY, 'api-key', 'key=malformed');
    const who = `key=${parsed.id}`;
    const record = await opts.keys?.get(parsed.id);
    // The secret is always hashed and compared in constant time (against a decoy for an unknown id), so the
    // time of a refusal does not tell unknown, wrong, revoked and expired keys apart.
    const matches = secretMatches(record ?? DECOY, parsed.secret) && record !== undefined;
    if (!record) throw new AuthFailure(BAD_KEY, 'api-key', `${who} (unknown)`);
    if (!matches) throw new AuthFailure(BAD_KEY, 'api-key', `${who} (wrong secret)`);
    const unusable = unusableReason(record, now());
    if (unusable) throw new AuthFailure(BAD_KEY, 'api-key', `${who} (${unusable})`);
    return {
      id: `key:${record.id}`,
      sub: `key:${record.id}`,
      issuer: undefined,
      scopes: new Set(record.scopes),
      roles: new Set(),
      teamId: record.team_id,
    };
  };

  return async (authorization, apiKey) => {
    if (authorization !== undefined && apiKey !== undefined) {
      // Two credentials would mean two identities (and two rate-limit budgets): take neither.
      throw new AuthFailure('send either Authorization or X-API-Key, not both', 'malformed', undefined);
    }
    if (apiKey !== undefined) return byKey(apiKey);
    if (!authorization) {
      throw new AuthFailure(
        'missing credentials (Authorization: Bearer <JWT> or X-API-Key)',
        'missing',
        undefined,
      );
    }
    const m = /^Bearer\s+([A-Za-z0-9._~+/=-]+)\s*$/i.exec(authorization);
    if (!m) throw new AuthFailure('the Authorization header must be "Bearer <JWT>"', 'malformed', undefined);
    const payload = await verifyJwt(m[1] as string);
    return identityFromClaims(payload);
  };
}

function words(v: unknown): string[] {
  if (typeof v === 'string') return v.split(' ').filter(Boolean);
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}

export function identityFromClaims(p: Record<string, unknown>): Identity {
  const sub = p.sub;
  if (typeof sub !== 'string' || sub.length === 0) throw new Unauthenticated('token has no subject (sub)');
  const team = p.team_id;
  if (team !== undefined && (typeof team !== 'string' || team.length === 0)) {
    throw new Unauthenticated('token team_id claim must be a non-empty string');
  }
  const iss = typeof p.iss === 'string' ? p.iss : undefined;
  return {
    id: `jwt:${iss ?? ''}:${sub}`,
    sub,
    issuer: iss,
    scopes: new Set([...words(p.scope), ...words(p.scp)]),
    roles: new Set(words(p.roles)),
    teamId: team as string | undefined,
  };
}

/** A refused authentication, for the system log: why, who was claimed, and from which address. */
export interface AuthFailureReport {
  reason: string;
  who: string | undefined;
  address: string;
  message: string;
}

/** The peer's address as the socket saw it (never a client-settable header); "unknown" without a socket. */
export function remoteAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function authenticate(auth: Authenticator, onFailure?: (f: AuthFailureReport) => void) {
  return createMiddleware<AppEnv>(async (c, next) => {
    try {
      c.set('identity', await auth(c.req.header('authorization'), c.req.header('x-api-key')));
    } catch (err) {
      if (err instanceof Unauthenticated) {
        const f = err instanceof AuthFailure ? err : undefined;
        onFailure?.({
          reason: f?.reason ?? 'claims',
          who: f?.who,
          address: remoteAddress(c),
          message: err.message,
        });
      }
      throw err;
    }
    await next();
  });
}

/** Requires a scope; `report_admin` may also come as an entry of the `roles` claim. */
export function requireScope(scope: string) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const id = c.get('identity');
    const ok = id.scopes.has(scope) || (scope === 'report_admin' && id.roles.has(scope));
    if (!ok) throw new Forbidden(`this route needs the ${scope} scope`);
    await next();
  });
}

/** The team a request may read: its own when bound; asking for another is 403. */
export function effectiveTeam(id: Identity, asked: string | undefined): string | undefined {
  if (id.teamId === undefined) return asked;
  if (asked !== undefined && asked !== id.teamId)
    throw new Forbidden('this token may only read its own team');
  return id.teamId;
}
