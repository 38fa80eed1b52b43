// Signed download links: HMAC-SHA256 over (job, expiry) with a key named by a key id in the URL, so keys can
// rotate: sign with the current key, verify with any key still in the ring. Everything signed is in the URL, so
// a link is checked before any storage lookup (an unauthenticated request with a forged link costs one HMAC).
// The job id is random and belongs to one user; v1 also signed the user id, which needed the job record first.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface KeyRing {
  /** Key id used for new links. */
  current: string;
  /** Every key that still verifies, by id (old ones stay until their links have expired). */
  keys: ReadonlyMap<string, Buffer>;
}

export interface SignedLink {
  exp: number;
  kid: string;
  sig: string;
}

function mac(key: Buffer, jobId: string, exp: number): Buffer {
  // Length-prefixed fields: no two different (job, exp) pairs share a message.
  const msg = ['tally-export-v2', jobId, String(exp)].map((f) => `${f.length}:${f}`).join('|');
  return createHmac('sha256', key).update(msg).digest();
}

export function signLink(ring: KeyRing, jobId: string, exp: number): SignedLink {
  const key = ring.keys.get(ring.current);
  if (!key) throw new Error(`export signing key ${ring.current} is missing`);
  return { exp, kid: ring.current, sig: mac(key, jobId, exp).toString('base64url') };
}

export type LinkCheck = 'ok' | 'invalid' | 'expired';

/** Checks a link's signature first (so an expiry is only reported for a genuine link), then its expiry. */
export function verifyLink(
  ring: KeyRing,
  jobId: string,
  link: SignedLink,
  nowMs: number = Date.now(),
): LinkCheck {
  const key = ring.keys.get(link.kid);
  if (!key || !/^[A-Za-z0-9_-]{43}$/.test(link.sig)) return 'invalid';
  const want = mac(key, jobId, link.exp);
  if (!timingSafeEqual(want, Buffer.from(link.sig, 'base64url'))) return 'invalid';
  return link.exp * 1000 <= nowMs ? 'expired' : 'ok';
}

interface KeyFile {
  current: string;
  keys: Record<string, string>;
}

export function keyFilePath(dataDir: string): string {
  return join(dataDir, 'export-url-keys.json');
}

/**
 * The ring stored in DATA_DIR/export-url-keys.json, created with one random key on first use. To rotate, add a
 * key under a new id and make it `current`; drop the old one after EXPORT_URL_TTL_SECONDS.
 */
export function loadOrCreateKeyRing(dataDir: string): KeyRing {
  const path = keyFilePath(dataDir);
  try {
    const file = JSON.parse(readFileSync(path, 'utf8')) as KeyFile;
    const keys = new Map(Object.entries(file.keys).map(([kid, k]) => [kid, Buffer.from(k, 'base64url')]));
    if (!keys.has(file.current)) throw new Error(`${path}: current key ${file.current} is not in keys`);
    return { current: file.current, keys };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dataDir, { recursive: true });
  const kid = `k${Date.now().toString(36)}`;
  const file: KeyFile = { current: kid, keys: { [kid]: randomBytes(32).toString('base64url') } };
  try {
    writeFileSync(path, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateKeyRing(dataDir);
    throw err;
  }
  return loadOrCreateKeyRing(dataDir);
}
