// The API's key ring sees keys created and revoked while it runs, once its short look-again interval passes,
// and keeps the last good keys when the file is broken.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createKey, revokeKey } from '../../core/api-keys.ts';
import { KeyRing } from './key-ring.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('KeyRing', () => {
  it('reloads on change after the interval, and keeps the last good keys on a broken file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tally-ring-'));
    dirs.push(dir);
    const path = join(dir, 'keys.json');
    const clock = { t: 0 };
    const ring = new KeyRing({ path, checkEveryMs: 1000, now: () => clock.t });
    expect(await ring.get('0123456789abcdef')).toBeUndefined();
    const a = createKey(path, { name: 'a', scopes: ['read:analytics'] }).record;
    expect(await ring.get(a.id)).toBeUndefined(); // within the interval: not looked at again
    clock.t += 1000;
    expect((await ring.get(a.id))?.name).toBe('a');
    revokeKey(path, a.id);
    clock.t += 1000;
    expect((await ring.get(a.id))?.revoked_at).toBeDefined();
    writeFileSync(path, '{"keys": [oops');
    clock.t += 1000;
    expect((await ring.get(a.id))?.revoked_at).toBeDefined();
  });
});
