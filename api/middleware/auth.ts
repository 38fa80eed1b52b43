// Bearer JWT authentication (HS256 with the configured or generated secret) and scope checks.
// 401 when the caller is not authenticated, 403 when authenticated but not allowed.
import { createMiddleware } from 'hono/factory';
import { errors as joseErrors, jwtVerify } from 'jose';
import { Forbidden, Unauthenticated } from '../../core/errors.ts';
import type { AppEnv, Identity } from '../env.ts';

export interface AuthOptions {
  /** HS256 secret; its UTF-8 bytes are the HMAC key. */
  secret: string;
  issuer: string | undefined;
  audience: string | undefined;
}

/** Tolerated clock skew between the IdP and this service when checking exp / nbf. */
export const CLOCK_TOLERANCE_SECONDS = 30;
const TYPES = new Set(['jwt', 'at+jwt', 'application/at+jwt']);

export type Authenticator = (
  authorization: string | undefined,
  apiKey: string | undefined,
) => Promise<Identity>;

export function createAuthenticator(opts: AuthOptions): Authenticator {
  const key = new TextEncoder().encode(opts.secret);
  return async (authorization, apiKey) => {
    if (apiKey !== undefined && authorization === undefined) {
      // API keys arrive with the security work (API_KEYS_FILE); until then no key is valid.
      throw new Unauthenticated('invalid API key');
    }
    if (!authorization) throw new Unauthenticated('missing bearer token (Authorization: Bearer <JWT>)');
    const m = /^Bearer\s+([A-Za-z0-9._~+/=-]+)\s*$/i.exec(authorization);
    if (!m) throw new Unauthenticated('the Authorization header must be "Bearer <JWT>"');
    try {
      const { payload, protectedHeader } = await jwtVerify(m[1] as string, key, {
        algorithms: ['HS256'],
        requiredClaims: ['sub', 'exp'],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        ...(opts.issuer ? { issuer: opts.issuer } : {}),
        ...(opts.audience ? { audience: opts.audience } : {}),
      });
      if (typeof protectedHeader.typ !== 'string' || !TYPES.has(protectedHeader.typ.toLowerCase())) {
        throw new Unauthenticated('token type (typ) must be JWT or at+jwt');
      }
      return identityFromClaims(payload);
    } catch (err) {
      if (err instanceof Unauthenticated) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new Unauthenticated('token expired', { cause: err });
      if (err instanceof joseErrors.JOSEError) {
        throw new Unauthenticated('invalid token', { cause: err });
      }
      throw err;
    }
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

export function authenticate(auth: Authenticator) {
  return createMiddleware<AppEnv>(async (c, next) => {
    c.set('identity', await auth(c.req.header('authorization'), c.req.header('x-api-key')));
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
