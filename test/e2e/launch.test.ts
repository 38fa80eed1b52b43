// bin/launch.mjs (how `npm start` and the roles run): in a checkout of its own (the launcher, two modules that
// import each other with `.ts` specifiers and type annotations, a migration read beside its module), an entry
// runs through tsx until the compiled tree is built, then from .cache/launch/<fingerprint>/ with the same
// arguments and the files it reads, and an edited source runs as edited at once, never from a stale tree.
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait.ts';

const root = mkdtempSync(join(tmpdir(), 'tally-launch-'));
mkdirSync(join(root, 'bin'));
mkdirSync(join(root, 'core'));
mkdirSync(join(root, 'clickhouse', 'migrations'), { recursive: true });
cpSync(resolve('bin', 'launch.mjs'), join(root, 'bin', 'launch.mjs'));
symlinkSync(resolve('node_modules'), join(root, 'node_modules'));
writeFileSync(join(root, 'package.json'), '{"type":"module"}\n');
writeFileSync(join(root, 'clickhouse', 'migrations', '0001_x.sql'), 'SELECT 1;\n');
writeFileSync(
  join(root, 'clickhouse', 'read.ts'),
  `import { readFileSync } from 'node:fs';
export const sql = (name: string): string =>
  readFileSync(new URL(\`./migrations/\${name}\`, import.meta.url), 'utf8').trim();
`,
);
const hello = (word: string) =>
  writeFileSync(
    join(root, 'bin', 'hello.ts'),
    `import { sql } from '../clickhouse/read.ts';
interface Out { word: string; args: string[]; from: string; sql: string }
const out: Out = { word: '${word}', args: process.argv.slice(2), from: import.meta.url, sql: sql('0001_x.sql') };
process.stdout.write(JSON.stringify(out));
`,
  );
hello('first');

function launch(...args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'launch.mjs'), ...args], {
    cwd: root,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`launch.mjs ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const run = () =>
  JSON.parse(launch('bin/hello.ts', '--port', '1')) as {
    word: string;
    args: string[];
    from: string;
    sql: string;
  };
const cache = join(root, '.cache', 'launch');
// A background build still under way holds a lock file; the checkout goes only once none is left.
const builds = () => (existsSync(cache) ? readdirSync(cache).filter((f) => f.endsWith('.lock')) : []);

describe('bin/launch.mjs', () => {
  afterAll(async () => {
    await waitFor('the background builds to end', async () => builds().length === 0 || undefined, {
      timeoutMs: 60_000,
      everyMs: 200,
    }).catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  });

  it('runs through tsx, then from the compiled tree, and never from a stale one', () => {
    // Before any build: the TypeScript module itself, with its arguments.
    const before = run();
    expect(before).toMatchObject({ word: 'first', args: ['--port', '1'], sql: 'SELECT 1;' });
    expect(before.from).toMatch(/\/bin\/hello\.ts$/);

    const tree = launch('--build-now').trim();
    expect(tree.startsWith(cache)).toBe(true);
    expect(existsSync(join(tree, 'clickhouse', 'migrations', '0001_x.sql'))).toBe(true);
    const compiled = run();
    expect(compiled).toMatchObject({ word: 'first', args: ['--port', '1'], sql: 'SELECT 1;' });
    expect(compiled.from).toBe(`file://${join(tree, 'bin', 'hello.js')}`);

    // Edited: the new source at once, through tsx, until its own tree exists.
    hello('second');
    const edited = run();
    expect(edited.word).toBe('second');
    expect(edited.from).toMatch(/\/bin\/hello\.ts$/);
    const next = launch('--build-now').trim();
    expect(next).not.toBe(tree);
    expect(run()).toMatchObject({ word: 'second', from: `file://${join(next, 'bin', 'hello.js')}` });
  });
});
