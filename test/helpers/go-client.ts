// clickhouse-go v2 (Grafana's ClickHouse driver) for tests: test/clients/go built once into .cache/, keyed by
// its go.mod, go.sum and source, its modules from the Go module proxy on the first build. Needs Go (PATH or
// /usr/local/go/bin).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');
const CLIENT = join(ROOT, 'test', 'clients', 'go');

function goBinary(): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'go'))) return join(dir, 'go');
  }
  return '/usr/local/go/bin/go';
}

/** The built client (rebuilt when its sources change). */
export function goSqlClient(): string {
  const hash = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(readFileSync(join(CLIENT, f)));
  const bin = join(ROOT, '.cache', 'go-sqlclient', hash.digest('hex').slice(0, 16), 'sqlclient');
  if (existsSync(bin)) return bin;
  // GOTOOLCHAIN=local: build with the installed Go, never download another toolchain. -mod=readonly: go.sum
  // pins every module.
  execFileSync(goBinary(), ['build', '-mod=readonly', '-buildvcs=false', '-o', bin, '.'], {
    cwd: CLIENT,
    env: {
      ...process.env,
      GOTOOLCHAIN: 'local',
      CGO_ENABLED: '0',
      // Without HOME (a bare CI environment) Go has no default module or build cache: keep both under .cache/.
      ...(process.env.HOME || process.env.GOPATH ? {} : { GOPATH: join(ROOT, '.cache', 'gopath') }),
      ...(process.env.HOME || process.env.GOCACHE || process.env.XDG_CACHE_HOME
        ? {}
        : { GOCACHE: join(ROOT, '.cache', 'go-build') }),
    },
    stdio: 'inherit',
    timeout: 480_000,
  });
  return bin;
}

/** Runs the client with `args`; its stdout. */
export function runGoSqlClient(args: readonly string[]): string {
  return execFileSync(goSqlClient(), [...args], { encoding: 'utf8', timeout: 120_000 });
}
