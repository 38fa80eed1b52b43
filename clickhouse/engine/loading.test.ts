// chdb (~540 MB with its engine) is loaded only when the embedded engine is chosen: the server roles' modules,
// and a server engine opened and used to build its sources, leave it unloaded. Checked in a fresh process,
// where the CommonJS module cache shows whether chdb's files were read.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function chdbModulesAfter(script: string): number {
  const probe = `
    import { createRequire } from 'node:module';
    ${script}
    const cache = createRequire(import.meta.url)('module')._cache;
    process.stdout.write(String(Object.keys(cache).filter((k) => k.includes('/node_modules/chdb/')).length));
  `;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(run.stderr);
  return Number(run.stdout);
}

describe('loading chdb', () => {
  it('never happens on a server: every role module, and a server engine with its sources', () => {
    const server = chdbModulesAfter(`
      await import('./bin/runtime.ts');
      await import('./worker/exports/setup.ts');
      await import('./worker/schedules/setup.ts');
      const { openClickHouse } = await import('./clickhouse/client.ts');
      const { serverClickHouse } = await import('./clickhouse/engine/server.ts');
      const ch = serverClickHouse('http://127.0.0.1:1', 'analytics');
      ch.exportSource().close();
      ch.dataVersion().close();
      await ch.close();
      if (typeof openClickHouse !== 'function') throw new Error('no openClickHouse');
    `);
    expect(server).toBe(0);
  });

  it('happens when the embedded engine is chosen (so the check above can see it)', () => {
    expect(chdbModulesAfter(`await import('./clickhouse/engine/embedded.ts');`)).toBeGreaterThan(0);
  });
});
