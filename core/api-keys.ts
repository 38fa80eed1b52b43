// API keys for services: the key format, the hashed file store (API_KEYS_FILE) and the checks shared by the
// `npm run keys` CLI and the API. A key is shown once at creation; only the SHA-256 of its secret is stored.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { KEY_SCOPES } from './tokens.ts';

/**
 * `tally_<id>_<secret>`: the 16-hex-digit id makes lookup O(1) and names the key in logs and limits; the
 * 32-byte random secret (base64url) is what proves possession. A plain SHA-256 is enough for a secret with
 * 256 bits of entropy (a slow password hash protects guessable secrets, which these are not).
 */
const KEY_FORMAT = /^tally_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const ID_FORMAT = /^[0-9a-f]{16}$/;

export interface ApiKeyRecord {
  id: string;
  name: string;
  scopes: string[];
  team_id?: string;
  created_at: string;
  expires_at?: string;
  revoked_at?: string;
  /** Hex SHA-256 of the secret part. */
  secret_sha256: string;
}

interface KeyFile {
  version: 1;
  keys: ApiKeyRecord[];
}

export function isKeyId(s: string): boolean {
  return ID_FORMAT.test(s);
}

/** Splits a presented key into id and secret; undefined when it is not shaped like a key at all. */
export function parseKey(key: string): { id: string; secret: string } | undefined {
  const m = KEY_FORMAT.exec(key);
  return m ? { id: m[1] as string, secret: m[2] as string } : undefined;
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** True when `secret` hashes to the record's hash; constant time in the secret. */
export function secretMatches(record: ApiKeyRecord, secret: string): boolean {
  const stored = Buffer.from(record.secret_sha256, 'hex');
  const given = sha256(secret);
  return stored.length === given.length && timingSafeEqual(stored, given);
}

/** Why a record cannot be used now, or undefined when it can. */
export function unusableReason(record: ApiKeyRecord, now: number): 'revoked' | 'expired' | undefined {
  if (record.revoked_at) return 'revoked';
  if (record.expires_at && Date.parse(record.expires_at) <= now) return 'expired';
  return undefined;
}

/** Parses the file's text; a broken file is an error, never an empty key set that silently locks everyone out. */
export function parseKeyFile(text: string, path: string): ApiKeyRecord[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: not valid JSON`, { cause: err });
  }
  const keys = (data as Partial<KeyFile> | null)?.keys;
  if (!Array.isArray(keys)) throw new Error(`${path}: expected {"version":1,"keys":[...]}`);
  for (const k of keys as ApiKeyRecord[]) {
    if (!isKeyId(k?.id) || !/^[0-9a-f]{64}$/.test(k?.secret_sha256) || !Array.isArray(k?.scopes)) {
      throw new Error(`${path}: a key record is malformed`);
    }
  }
  return keys as ApiKeyRecord[];
}

/** The keys in `path`; none when the file does not exist yet. */
export function readKeys(path: string): ApiKeyRecord[] {
  try {
    return parseKeyFile(readFileSync(path, 'utf8'), path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Replaces the file atomically (write, then rename), so a reader never sees half a file. Mode 0600. */
export function writeKeys(path: string, keys: ApiKeyRecord[]): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const body: KeyFile = { version: 1, keys };
  writeFileSync(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

export interface NewKey {
  name: string;
  scopes: string[];
  teamId?: string;
  expiresAt?: Date;
}

/** Validates a new key's fields; returns the problems (empty when fine). */
export function checkNewKey(k: NewKey, now = Date.now()): string[] {
  const problems: string[] = [];
  if (!/^[\w .:@-]{1,100}$/.test(k.name)) problems.push('--name: 1-100 letters, digits, space or . _ : @ -');
  const known = new Set<string>(KEY_SCOPES);
  if (k.scopes.length === 0) problems.push(`--scopes: at least one of ${KEY_SCOPES.join(', ')}`);
  for (const s of k.scopes) {
    if (!known.has(s))
      problems.push(`--scopes: unknown scope ${JSON.stringify(s)} (known: ${KEY_SCOPES.join(', ')})`);
  }
  if (k.teamId !== undefined && !/^.{1,256}$/.test(k.teamId)) problems.push('--team: 1-256 characters');
  if (k.expiresAt && !(k.expiresAt.getTime() > now)) problems.push('--expires: must be a future instant');
  return problems;
}

/** Makes a key: the key string (the only time it exists in clear) and the record to store (its hash). */
export function newKey(k: NewKey, now = new Date()): { key: string; record: ApiKeyRecord } {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const record: ApiKeyRecord = {
    id,
    name: k.name,
    scopes: [...new Set(k.scopes)],
    ...(k.teamId !== undefined ? { team_id: k.teamId } : {}),
    created_at: now.toISOString(),
    ...(k.expiresAt ? { expires_at: k.expiresAt.toISOString() } : {}),
    secret_sha256: sha256(secret).toString('hex'),
  };
  return { key: `tally_${id}_${secret}`, record };
}

/** Creates a key in a key file (the format of earlier versions; tests and the import use it). */
export function createKey(path: string, k: NewKey, now = new Date()): { key: string; record: ApiKeyRecord } {
  const keys = readKeys(path);
  let made = newKey(k, now);
  while (keys.some((r) => r.id === made.record.id)) made = newKey(k, now);
  writeKeys(path, [...keys, made.record]);
  return made;
}

/** Marks a key revoked; false when no such key. Revoked records are kept so that `keys list` shows them. */
export function revokeKey(path: string, id: string, now = new Date()): boolean {
  const keys = readKeys(path);
  const record = keys.find((r) => r.id === id);
  if (!record) return false;
  if (!record.revoked_at) record.revoked_at = now.toISOString();
  writeKeys(path, keys);
  return true;
}
