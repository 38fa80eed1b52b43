// API keys: the format, the hashed file (no secret in it), constant-time matching, revocation and expiry.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  checkNewKey,
  createKey,
  parseKey,
  readKeys,
  revokeKey,
  secretMatches,
  unusableReason,
} from './api-keys.ts';

const dirs: string[] = [];
function tempPath() {
  const dir = mkdtempSync(join(tmpdir(), 'tally-apikeys-'));
  dirs.push(dir);
  return join(dir, 'nested', 'api-keys.json');
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('api keys', () => {
  it('creates a key whose secret is stored only as a hash, in a 0600 file', () => {
    const path = tempPath();
    const { key, record } = createKey(path, { name: 'bi', scopes: ['read:analytics'], teamId: 't1' });
    const parsed = parseKey(key);
    expect(parsed?.id).toBe(record.id);
    const text = readFileSync(path, 'utf8');
    expect(text).not.toContain(parsed?.secret);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const [stored] = readKeys(path);
    expect(stored).toMatchObject({ id: record.id, name: 'bi', scopes: ['read:analytics'], team_id: 't1' });
    expect(secretMatches(stored as typeof record, parsed?.secret as string)).toBe(true);
    expect(secretMatches(stored as typeof record, `${parsed?.secret.slice(0, -1)}x`)).toBe(false);
  });

  it('parses only well-formed keys', () => {
    expect(parseKey(`tally_${'a'.repeat(16)}_${'B'.repeat(43)}`)).toEqual({
      id: 'a'.repeat(16),
      secret: 'B'.repeat(43),
    });
    for (const bad of [
      '',
      'tally_',
      `tally_${'A'.repeat(16)}_${'B'.repeat(43)}`,
      `tally_${'a'.repeat(16)}_${'B'.repeat(42)}`,
      `x${'a'.repeat(70)}`,
    ]) {
      expect(parseKey(bad), bad).toBeUndefined();
    }
  });

  it('revokes and expires', () => {
    const path = tempPath();
    const now = Date.parse('2030-01-01T00:00:00Z');
    const a = createKey(path, {
      name: 'a',
      scopes: ['write:events'],
      expiresAt: new Date(now + 1000),
    }).record;
    expect(unusableReason(a, now)).toBeUndefined();
    expect(unusableReason(a, now + 1000)).toBe('expired');
    expect(revokeKey(path, a.id)).toBe(true);
    expect(unusableReason(readKeys(path)[0] as typeof a, now)).toBe('revoked');
    expect(revokeKey(path, 'f'.repeat(16))).toBe(false);
  });

  it('validates new keys with messages naming the option', () => {
    expect(checkNewKey({ name: 'ok', scopes: ['read:analytics', 'report_admin'] })).toEqual([]);
    expect(checkNewKey({ name: '', scopes: [] })).toEqual([
      expect.stringMatching(/^--name/),
      expect.stringMatching(/^--scopes: at least one/),
    ]);
    expect(checkNewKey({ name: 'x', scopes: ['read'] })).toEqual([
      expect.stringMatching(/^--scopes: unknown scope "read"/),
    ]);
    expect(checkNewKey({ name: 'x', scopes: ['read:analytics'], expiresAt: new Date(0) })).toEqual([
      expect.stringMatching(/^--expires/),
    ]);
  });
});
