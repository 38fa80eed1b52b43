// The choice between the single-node and the cluster migrations, and the pieces of cluster SQL built in code.
// The engine-backed checks (parsing, table-by-table parity, a run through Distributed tables) are in
// test/integration/cluster-migrations.test.ts.
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  bookkeepingStatements,
  CLUSTER_MIGRATIONS_DIR,
  fillPlaceholders,
  loadMigrations,
  MIGRATIONS_DIR,
  migrationsFor,
} from './migrate.ts';
import { retentionStatement } from './retention.ts';

const sqlFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.sql'));

describe('cluster migrations', () => {
  it('are the single-node migrations file for file (a new migration is written twice)', () => {
    expect(sqlFiles(CLUSTER_MIGRATIONS_DIR)).toEqual(sqlFiles(MIGRATIONS_DIR));
  });

  it('are chosen by the connection', () => {
    expect(migrationsFor({ cluster: 'c' })).toEqual(loadMigrations(CLUSTER_MIGRATIONS_DIR));
    expect(migrationsFor({ cluster: undefined })).toEqual(loadMigrations(MIGRATIONS_DIR));
  });

  it('use placeholders only in the cluster set, and only known ones', () => {
    for (const m of loadMigrations(MIGRATIONS_DIR)) expect(m.statements.join('\n')).not.toMatch(/\{\{/);
    for (const m of loadMigrations(CLUSTER_MIGRATIONS_DIR)) {
      for (const s of m.statements) {
        const filled = fillPlaceholders(s, { cluster: 'c', database: 'd' });
        expect(filled, `${m.version}_${m.name}`).not.toMatch(/\{\{|\}\}/);
      }
    }
  });

  it('fills placeholders as quoted identifiers and refuses what it cannot fill', () => {
    expect(fillPlaceholders('ON CLUSTER {{cluster}} {{database}}.t', { cluster: 'c1', database: 'db' })).toBe(
      'ON CLUSTER `c1` `db`.t',
    );
    expect(() => fillPlaceholders('ON CLUSTER {{cluster}}', { database: 'db' })).toThrow(/has no value/);
    expect(() => fillPlaceholders('{{schema}}', { cluster: 'c', database: 'db' })).toThrow(/has no value/);
    expect(() => fillPlaceholders('{{cluster}}', { cluster: 'a`b', database: 'db' })).toThrow(/unsafe/);
  });

  it('keep the migrations record once per cluster: replicated local table behind a Distributed one', () => {
    expect(bookkeepingStatements({ cluster: undefined })).toHaveLength(1);
    const [local, dist] = bookkeepingStatements({ cluster: 'c' });
    expect(local).toMatch(
      /schema_migrations_local ON CLUSTER \{\{cluster\}\}[\s\S]*ReplicatedReplacingMergeTree/,
    );
    expect(dist).toMatch(/schema_migrations ON CLUSTER \{\{cluster\}\}[\s\S]*ENGINE = Distributed/);
  });
});

describe('retention in a cluster', () => {
  it('alters the shard-local raw tables ON CLUSTER', () => {
    const ch = { cluster: 'c', database: 'analytics' };
    expect(retentionStatement(ch, 'usage_events', 30)).toBe(
      'ALTER TABLE `analytics`.usage_events_local ON CLUSTER `c` MODIFY TTL toDateTime(timestamp) + INTERVAL 30 DAY',
    );
    expect(retentionStatement(ch, 'log_events', 0)).toBe(
      'ALTER TABLE `analytics`.log_events_local ON CLUSTER `c` REMOVE TTL',
    );
  });

  it('is unchanged on one node', () => {
    expect(retentionStatement({ cluster: undefined, database: 'analytics' }, 'usage_events', 7)).toBe(
      'ALTER TABLE usage_events MODIFY TTL toDateTime(timestamp) + INTERVAL 7 DAY',
    );
  });
});
