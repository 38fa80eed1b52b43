// `npm run keys` while `npm start` runs and owns the embedded control store: the CLI goes through the service
// (/admin/keys with a short keys:admin token), so a key it creates works at once and a revocation counts at the
// next request; with no service running it opens the store itself. A second service on the same data directory
// is refused in one line.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../core/tokens.ts';
import { freePort, type Service, serviceEnv, startService } from '../helpers/service.ts';

const SECRET = 'keys-cli-secret-keys-cli-secret-keys-cli-0123';
const dataDir = mkdtempSync(join(tmpdir(), 'tally-keys-'));

function keys(port: number, ...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'bin/keys.ts', ...args], {
    env: serviceEnv({ DATA_DIR: dataDir, AUTH_JWT_SECRET: SECRET, PORT: String(port) }),
    encoding: 'utf8',
  });
}

describe('npm run keys beside a running service', () => {
  let service: Service | undefined;
  afterAll(async () => {
    service?.child.kill('SIGTERM');
    await service?.exited;
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('creates, lists and revokes through the service; opens the store itself when none runs', async () => {
    service = await startService({ DATA_DIR: dataDir, AUTH_JWT_SECRET: SECRET });
    const port = Number(new URL(service.base).port);
    const once = (key: string) =>
      fetch(`${service?.base}/reports/usage-summary?start_date=2025-01-01&end_date=2025-01-02`, {
        headers: { 'x-api-key': key },
      });
    // The CLI runs with spawnSync, which blocks this process for seconds: the kept-alive socket of the previous
    // read may be closed by the server meanwhile, unseen, and the next fetch reuses it (CI: "other side
    // closed"). A read that never reached the server is sent again, on a new socket; any answer is kept.
    const read = async (key: string) => {
      try {
        return await once(key);
      } catch (err) {
        if ((err as { cause?: { code?: string } }).cause?.code !== 'UND_ERR_SOCKET') throw err;
        return once(key);
      }
    };

    const made = keys(port, 'create', '--name', 'etl', '--scopes', 'read:analytics');
    expect(made.status, made.stderr).toBe(0);
    const key = made.stdout.trim();
    expect(key).toMatch(/^tally_[0-9a-f]{16}_[\w-]{43}$/);
    expect((await read(key)).status).toBe(200);
    const id = key.split('_')[1] as string;
    const list = keys(port, 'list', '--json');
    expect(list.status, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual([expect.objectContaining({ id, name: 'etl', status: 'active' })]);
    expect(list.stdout).not.toContain('secret');
    expect(keys(port, 'revoke', id).status).toBe(0);
    expect((await read(key)).status).toBe(401);
    expect(keys(port, 'revoke', '0123456789abcdef').status).toBe(1);

    // The admin routes need keys:admin, which the first-start admin token (all scopes) does not carry.
    const admin = await mintToken(SECRET, { sub: 'admin' });
    const res = await fetch(`${service.base}/admin/keys`, { headers: { authorization: `Bearer ${admin}` } });
    expect(res.status).toBe(403);

    // A second service on this data directory: one line naming it.
    const second = spawnSync(process.execPath, ['--import', 'tsx', 'bin/start.ts'], {
      env: serviceEnv({ DATA_DIR: dataDir, AUTH_JWT_SECRET: SECRET, PORT: String(await freePort()) }),
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(second.status).toBe(1);
    expect(second.stderr).toMatch(
      /^tally: DATA_DIR: .* is in use by another Tally process \(pid \d+\); [^\n]*\n$/,
    );

    service.child.kill('SIGTERM');
    await service.exited;
    service = undefined;
    // No service: the CLI opens the store itself, and the next start sees what it did.
    const offline = keys(port, 'create', '--name', 'offline', '--scopes', 'write:events');
    expect(offline.status, offline.stderr).toBe(0);
    service = await startService({ DATA_DIR: dataDir, AUTH_JWT_SECRET: SECRET });
    const names = JSON.parse(keys(Number(new URL(service.base).port), 'list', '--json').stdout) as Array<{
      name: string;
      status: string;
    }>;
    expect(names.map((k) => `${k.name}:${k.status}`)).toEqual(['etl:revoked', 'offline:active']);
  });
});
