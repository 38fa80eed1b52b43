// Python producers for tests: a virtual environment under .cache/ with pinned packages from PyPI, made on first
// use and kept (CI starts from a clean clone with only `npm ci` done, so the test makes it itself).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';

/** librdkafka 2.x bundled in the wheel: every codec, idempotence and transactions. */
export const CONFLUENT_KAFKA = 'confluent-kafka==2.16.1';

/** The python of a venv that has `pkg` (e.g. "confluent-kafka==2.16.1"); made and installed when missing. */
export function pythonWith(pkg: string, module: string): string {
  const dir = resolve('.cache', `pyenv-${pkg.replace(/[^A-Za-z0-9.]+/g, '-')}`);
  const python = resolve(dir, 'bin', 'python');
  const has = () => {
    try {
      execFileSync(python, ['-c', `import ${module}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (existsSync(python) && has()) return python;
  mkdirSync(resolve('.cache'), { recursive: true });
  execFileSync('python3', ['-m', 'venv', '--clear', dir], { stdio: 'inherit' });
  execFileSync(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', pkg], {
    stdio: 'inherit',
    timeout: 300_000,
  });
  if (!has()) throw new Error(`${pkg} installed but \`import ${module}\` fails`);
  return python;
}
