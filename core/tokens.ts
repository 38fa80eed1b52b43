// The HS256 signing secret (AUTH_JWT_SECRET, or one generated on first start into DATA_DIR) and minting of
// development tokens. Issuing tokens in production is the identity provider's job.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';

export const ALL_SCOPES = ['read:analytics', 'write:events', 'report_admin'] as const;
/** Administers API keys (/admin/keys, what `npm run keys` calls); not among ALL_SCOPES, implied by none. */
export const KEYS_ADMIN_SCOPE = 'keys:admin';
/** Queries /clickhouse with SQL (docs/sql.md); not among ALL_SCOPES, implied by none: given only on purpose. */
export const SQL_SCOPE = 'query:sql';
/** Every scope a key may carry. */
export const KEY_SCOPES = [...ALL_SCOPES, SQL_SCOPE] as const;

export interface Secret {
  value: string;
  /** True when this call generated it (first start). */
  created: boolean;
}

export function secretPath(dataDir: string): string {
  return join(dataDir, 'jwt-secret');
}

/** The configured secret, else the one stored in dataDir, else a new one written there (mode 0600). */
export function loadOrCreateSecret(dataDir: string, configured: string | undefined): Secret {
  if (configured) return { value: configured, created: false };
  const path = secretPath(dataDir);
  try {
    const value = readFileSync(path, 'utf8').trim();
    if (Buffer.byteLength(value) >= 32) return { value, created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dataDir, { recursive: true });
  const value = randomBytes(48).toString('base64url');
  try {
    writeFileSync(path, `${value}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process generated it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateSecret(dataDir, undefined);
    throw err;
  }
  return { value, created: true };
}

export interface TokenClaims {
  sub: string;
  scope?: string;
  team_id?: string;
  ttlSeconds?: number;
  issuer?: string;
  audience?: string;
}

export async function mintToken(secret: string, c: TokenClaims): Promise<string> {
  const jwt = new SignJWT({
    scope: c.scope ?? ALL_SCOPES.join(' '),
    ...(c.team_id ? { team_id: c.team_id } : {}),
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(c.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (c.ttlSeconds ?? 3600));
  if (c.issuer) jwt.setIssuer(c.issuer);
  if (c.audience) jwt.setAudience(c.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}
