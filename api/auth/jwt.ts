// JWT verification with jose: an explicit algorithm allow-list per key type (HS256 only with the shared secret;
// RS256, ES256, EdDSA only with the IdP's JWKS), so no "none" and no HS/RS confusion; exp and sub required,
// exp/nbf with a stated clock tolerance, iss/aud when configured, typ JWT or at+jwt.
import {
  decodeJwt,
  decodeProtectedHeader,
  type JWTPayload,
  type JWTVerifyOptions,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import { AuthFailure, loggable } from './failure.ts';
import type { JwksCache } from './jwks.ts';

/** Tolerated clock skew between the IdP and this service when checking exp / nbf. */
export const CLOCK_TOLERANCE_SECONDS = 30;
/** The only algorithm accepted with the shared secret. */
export const SECRET_ALGORITHMS = ['HS256'];
/** The only algorithms accepted with keys from the JWKS (never an HMAC: its "secret" would be a public key). */
export const JWKS_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'];
/**
 * How far ahead of this service's clock a token's `iat` may be. A token "issued" years from now is a forged
 * or mis-minted one (jose checks only that iat is a number); a minute covers an IdP whose clock runs ahead.
 */
export const MAX_IAT_AHEAD_SECONDS = 60;
/** Longer bearer values are refused before any parsing. */
export const MAX_TOKEN_CHARS = 8192;
const TYPES = new Set(['jwt', 'at+jwt', 'application/at+jwt']);

export interface JwtOptions {
  /** HS256 secret; its UTF-8 bytes are the HMAC key. */
  secret: string;
  /** The IdP's keys, when AUTH_JWKS_URL is set. */
  jwks?: JwksCache;
  issuer: string | undefined;
  audience: string | undefined;
  /** The clock for exp / nbf (tests). */
  now?: () => number;
}

export type JwtVerifier = (token: string) => Promise<JWTPayload>;

/** Unverified sub / kid / iss for the failure log: who the caller claims to be. */
function claimedWho(token: string): string | undefined {
  const parts: string[] = [];
  try {
    const kid = loggable(decodeProtectedHeader(token).kid);
    if (kid) parts.push(`kid=${kid}`);
    const p = decodeJwt(token);
    const sub = loggable(p.sub);
    const iss = loggable(p.iss);
    if (sub) parts.push(`sub=${sub}`);
    if (iss) parts.push(`iss=${iss}`);
  } catch {
    // Not decodable: nobody is claimed.
  }
  return parts.length > 0 ? parts.join(' ') : undefined;
}

/** Maps jose's errors to a reason and a message that says what is wrong without echoing the token. */
function failure(err: unknown, who: string | undefined): unknown {
  const fail = (message: string, reason: AuthFailure['reason']) =>
    new AuthFailure(message, reason, who, { cause: err });
  if (err instanceof joseErrors.JWTExpired) return fail('token expired', 'expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return fail('token not yet valid', 'not-yet-valid');
    return fail(`token claim ${err.claim} is missing or not accepted`, 'claims');
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed)
    return fail('invalid token signature', 'bad-signature');
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return fail('token algorithm not accepted', 'algorithm');
  if (err instanceof joseErrors.JWKSNoMatchingKey)
    return fail('token signing key (kid) unknown', 'unknown-kid');
  if (err instanceof joseErrors.JOSEError) return fail('invalid token', 'malformed');
  return err;
}

export function createJwtVerifier(opts: JwtOptions): JwtVerifier {
  // Imported once: given the secret's bytes, jose imports them as a key on every verify (importKey and its
  // algorithm checks were about half of a verify's main-thread time at 100M events' cached requests).
  const secret = crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(opts.secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['verify'],
  );
  // Its failure reaches the first verify, which awaits it; not an unhandled rejection before then.
  secret.catch(() => undefined);
  const base = (algorithms: string[]): JWTVerifyOptions => ({
    algorithms,
    requiredClaims: ['sub', 'exp'],
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    ...(opts.now ? { currentDate: new Date(opts.now()) } : {}),
    ...(opts.issuer ? { issuer: opts.issuer } : {}),
    ...(opts.audience ? { audience: opts.audience } : {}),
  });
  return async (token) => {
    if (token.length > MAX_TOKEN_CHARS) throw new AuthFailure('token too long', 'malformed', undefined);
    const who = claimedWho(token);
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch (err) {
      throw new AuthFailure('invalid token', 'malformed', who, { cause: err });
    }
    try {
      // The key is chosen by key type first and the algorithm must belong to that type: an HS256 token is only
      // ever checked against the secret, an RS256 one only against the JWKS.
      let verified: Awaited<ReturnType<typeof jwtVerify>>;
      if (typeof alg === 'string' && SECRET_ALGORITHMS.includes(alg)) {
        verified = await jwtVerify(token, await secret, base(SECRET_ALGORITHMS));
      } else if (typeof alg === 'string' && opts.jwks && JWKS_ALGORITHMS.includes(alg)) {
        verified = await jwtVerify(token, opts.jwks.getKey, base(JWKS_ALGORITHMS));
      } else {
        throw new AuthFailure('token algorithm not accepted', 'algorithm', who);
      }
      const typ = verified.protectedHeader.typ;
      if (typeof typ !== 'string' || !TYPES.has(typ.toLowerCase())) {
        throw new AuthFailure('token type (typ) must be JWT or at+jwt', 'claims', who);
      }
      const iat = verified.payload.iat;
      const nowSeconds = (opts.now ? opts.now() : Date.now()) / 1000;
      if (typeof iat === 'number' && iat > nowSeconds + MAX_IAT_AHEAD_SECONDS) {
        throw new AuthFailure('token issued in the future (iat)', 'not-yet-valid', who);
      }
      return verified.payload;
    } catch (err) {
      if (err instanceof AuthFailure) throw err;
      throw failure(err, who);
    }
  };
}
