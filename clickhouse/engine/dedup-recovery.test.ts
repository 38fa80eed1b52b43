import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { recoverDedupLogs } from './dedup-recovery.ts';

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

/** An engine directory with one table: its part directories and its deduplication log files. */
function engineDir(dirs: string[], logs: Record<string, string>): { root: string; table: string } {
  const root = mkdtempSync(join(tmpdir(), 'tally-dedup-recovery-'));
  roots.push(root);
  const table = join(root, 'store', 'abc', 'abc12345-0000-0000-0000-000000000000');
  mkdirSync(join(table, 'deduplication_logs'), { recursive: true });
  for (const d of dirs) mkdirSync(join(table, d));
  for (const [name, text] of Object.entries(logs))
    writeFileSync(join(table, 'deduplication_logs', name), text);
  mkdirSync(join(root, 'metadata', 'db'), { recursive: true });
  writeFileSync(
    join(root, 'metadata', 'db', 'usage_first_seen.sql'),
    "ATTACH TABLE _ UUID 'abc12345-0000-0000-0000-000000000000'\n(\n    `user_id` String\n)\n",
  );
  return { root, table };
}

const log = (table: string, name: string) => readFileSync(join(table, 'deduplication_logs', name), 'utf8');

describe('recoverDedupLogs', () => {
  it('drops the record of a part left temporary, in the last log, once', () => {
    const { root, table } = engineDir(['2025_1_1_1', 'tmp_insert_2025_2_2_1'], {
      'deduplication_log_1.txt': '1\t2025_1_1_1\t2025_11_12\n',
      'deduplication_log_2.txt': '1\t2025_2_2_1\t2025_21_22\n',
    });
    expect(recoverDedupLogs(root)).toEqual([
      { table: 'db.usage_first_seen', dir: table, part: '2025_2_2_1', blockId: '2025_21_22' },
    ]);
    expect(log(table, 'deduplication_log_2.txt')).toBe(
      '1\t2025_2_2_1\t2025_21_22\n2\t2025_2_2_1\t2025_21_22\n',
    );
    expect(log(table, 'deduplication_log_1.txt')).toBe('1\t2025_1_1_1\t2025_11_12\n');
    expect(recoverDedupLogs(root)).toEqual([]);
  });

  it('leaves committed parts, records already dropped, and temporary parts without a record', () => {
    const text = ['1\tall_1_1_1\tall_1', '1\tall_2_2_1\tall_2', '2\tall_2_2_1\tall_2', ''].join('\n');
    // all_1_1_1 committed (a temporary copy beside it cannot be its insert); all_2_2_1 already undone;
    // all_3_3_1 killed before its record.
    const { root, table } = engineDir(
      ['all_1_1_1', 'tmp_insert_all_1_1_1', 'tmp_insert_all_2_2_1', 'tmp_insert_all_3_3_1'],
      { 'deduplication_log_1.txt': text },
    );
    expect(recoverDedupLogs(root)).toEqual([]);
    expect(log(table, 'deduplication_log_1.txt')).toBe(text);
  });

  it('appends nothing behind a record cut short', () => {
    const text = '1\tall_1_1_1\tall_1\n1\tall_2_2';
    const { root, table } = engineDir(['tmp_insert_all_1_1_1'], { 'deduplication_log_1.txt': text });
    expect(recoverDedupLogs(root)).toEqual([]);
    expect(log(table, 'deduplication_log_1.txt')).toBe(text);
  });

  it('does nothing for a directory the engine has not created yet', () => {
    const root = mkdtempSync(join(tmpdir(), 'tally-dedup-recovery-'));
    roots.push(root);
    expect(recoverDedupLogs(root)).toEqual([]);
  });
});
