// The lane rules on small fixtures: which imports cross a lane, and how known exceptions are kept honest.
import { describe, expect, it } from 'vitest';
import { checkFile, checkLanes, importsOf } from './lanes.ts';

// Fixture sources quote their modules through `q`, so that this file's own text imports nothing the lane check
// would flag when it scans the repository.
const q = (module: string) => `'${module}'`;

describe('importsOf', () => {
  it('finds static, type-only, multi-line, re-exported, dynamic and required modules, not ones in comments', () => {
    const source = [
      `import { a } from ${q('./a.ts')};`,
      `import type { B } from ${q('../b.ts')};`,
      'import {',
      '  c,',
      '  d,',
      `} from ${q('chdb')};`,
      `import ${q('side-effect')};`,
      `export * from ${q('./all.ts')};`,
      `export { e } from ${q('./e.ts')};`,
      `const k = await import(${q('kafkajs')});`,
      `const p = require(${q('pg')});`,
      `// import { x } from ${q('commented-out')};`,
      `/* import { y } from ${q('block-commented')}; */`,
      `const url = ${q('http://example.com/a')}; import z from ${q('./z.ts')};`,
    ].join('\n');
    expect(importsOf(source).sort()).toEqual(
      ['../b.ts', './a.ts', './all.ts', './e.ts', './z.ts', 'chdb', 'kafkajs', 'pg', 'side-effect'].sort(),
    );
  });
});

describe('checkFile', () => {
  it('refuses imports between ingest/, api/ and worker/, and allows core/, clickhouse/, control/', () => {
    expect(checkFile('api/routes/x.ts', ['../../ingest/consumer.ts'])).toHaveLength(1);
    expect(checkFile('ingest/x.ts', ['../api/app.ts'])).toHaveLength(1);
    expect(checkFile('worker/x.ts', ['../api/exports/store.ts'])).toHaveLength(1);
    expect(checkFile('api/x.ts', ['../worker/jobs.ts'])[0]?.message).toMatch(
      /api\/ and worker\/ are separate lanes/,
    );
    expect(
      checkFile('api/routes/x.ts', ['../app.ts', '../../core/config.ts', '../../clickhouse/client.ts']),
    ).toEqual([]);
    expect(checkFile('worker/x.ts', ['../control/store.ts'])).toEqual([]);
    // bin/ wires the lanes together; tests may import any module of the project.
    expect(checkFile('bin/start.ts', ['../api/app.ts', '../ingest/consumer.ts', '../worker/run.ts'])).toEqual(
      [],
    );
    expect(checkFile('test/e2e/x.test.ts', ['../../api/app.ts', '../../ingest/consumer.ts'])).toEqual([]);
  });

  it('lets only clickhouse/ import the ClickHouse libraries, subpaths included', () => {
    expect(checkFile('clickhouse/client.ts', ['@clickhouse/client'])).toEqual([]);
    expect(
      checkFile('clickhouse/engine/embedded.ts', ['@clickhouse/client', 'chdb', 'chdb/connection']),
    ).toEqual([]);
    // chdb only in the embedded engine, which is loaded on demand: not even elsewhere in clickhouse/.
    expect(checkFile('clickhouse/client.ts', ['chdb/connection'])[0]?.message).toBe(
      'clickhouse/client.ts imports chdb/connection: only the embedded engine loads chdb',
    );
    const v = checkFile('api/exports/stream.ts', ['chdb']);
    expect(v).toHaveLength(1);
    expect(v[0]?.message).toBe('api/exports/stream.ts imports chdb: only the embedded engine loads chdb');
    expect(checkFile('test/x.test.ts', ['@clickhouse/client'])).toHaveLength(1);
    expect(checkFile('bench/x.ts', ['chdb/connection'])).toHaveLength(1);
    expect(checkFile('api/x.ts', ['@clickhouse/client-web'])).toHaveLength(1);
    // A name that merely starts the same way is another package.
    expect(checkFile('api/x.ts', ['chdb-extra'])).toEqual([]);
  });

  it('lets only ingest/kafka.ts import kafkajs, and only control/ import a PostgreSQL driver', () => {
    expect(checkFile('ingest/kafka.ts', ['kafkajs'])).toEqual([]);
    expect(checkFile('ingest/consumer.ts', ['kafkajs'])).toHaveLength(1);
    expect(checkFile('test/faults/x.test.ts', ['kafkajs'])).toHaveLength(1);
    expect(checkFile('control/store.ts', ['pg', '@electric-sql/pglite'])).toEqual([]);
    expect(checkFile('api/x.ts', ['pg'])).toHaveLength(1);
    expect(checkFile('worker/x.ts', ['@electric-sql/pglite'])).toHaveLength(1);
    expect(checkFile('api/x.ts', ['pg-format'])).toEqual([]);
  });
});

describe('checkLanes', () => {
  const files = new Map([
    ['api/a.ts', `import { Session } from ${q('chdb')};\nimport { x } from ${q('../ingest/b.ts')};`],
    ['ingest/b.ts', `import { Kafka } from ${q('kafkajs')};`],
    ['ingest/kafka.ts', `import { Kafka } from ${q('kafkajs')};`],
  ]);

  it('names every violation that is not a known exception', () => {
    const { violations, stale } = checkLanes(files, []);
    expect(violations.map((v) => `${v.file} ${v.specifier}`).sort()).toEqual([
      'api/a.ts ../ingest/b.ts',
      'api/a.ts chdb',
      'ingest/b.ts kafkajs',
    ]);
    expect(stale).toEqual([]);
  });

  it('keeps known exceptions out of the violations and reports those that no longer occur', () => {
    const known = [
      { file: 'api/a.ts', module: 'chdb', reason: 'r' },
      { file: 'api/gone.ts', module: 'pg', reason: 'r' },
    ];
    const { violations, stale } = checkLanes(files, known);
    expect(violations.map((v) => v.specifier).sort()).toEqual(['../ingest/b.ts', 'kafkajs']);
    expect(stale).toEqual([known[1]]);
  });
});
