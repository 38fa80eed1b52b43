// API keys for services: one row per key, the secret's SHA-256 only (core/api-keys.ts makes and checks them).
import type { ApiKeyRecord } from '../core/api-keys.ts';
import type { Row, Sql } from './db.ts';

function fromRow(r: Row): ApiKeyRecord {
  return {
    id: String(r.id),
    name: String(r.name),
    scopes: String(r.scopes).split(' ').filter(Boolean),
    ...(r.team_id != null ? { team_id: String(r.team_id) } : {}),
    created_at: String(r.created_at),
    ...(r.expires_at != null ? { expires_at: String(r.expires_at) } : {}),
    ...(r.revoked_at != null ? { revoked_at: String(r.revoked_at) } : {}),
    secret_sha256: String(r.secret_sha256),
  };
}

export async function getKey(db: Sql, id: string): Promise<ApiKeyRecord | undefined> {
  const [r] = await db.query('SELECT * FROM api_keys WHERE id = $1', [id]);
  return r ? fromRow(r) : undefined;
}

export async function listKeys(db: Sql): Promise<ApiKeyRecord[]> {
  return (await db.query('SELECT * FROM api_keys ORDER BY created_at, id')).map(fromRow);
}

/** Stores a key record unless its id exists (false then; an import that runs twice adds nothing). */
export async function insertKey(db: Sql, k: ApiKeyRecord): Promise<boolean> {
  const rows = await db.query(
    `INSERT INTO api_keys (id, name, scopes, team_id, created_at, expires_at, revoked_at, secret_sha256)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING RETURNING id`,
    [
      k.id,
      k.name,
      k.scopes.join(' '),
      k.team_id ?? null,
      k.created_at,
      k.expires_at ?? null,
      k.revoked_at ?? null,
      k.secret_sha256,
    ],
  );
  return rows.length === 1;
}

/** Marks a key revoked (kept, so that listings show it); false when there is no such key. */
export async function revokeKey(db: Sql, id: string, nowIso: string): Promise<boolean> {
  const rows = await db.query(
    'UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1 RETURNING id',
    [id, nowIso],
  );
  return rows.length === 1;
}
