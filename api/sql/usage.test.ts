import { describe, expect, it } from 'vitest';
import { SqlUsage } from './usage.ts';

describe('SqlUsage', () => {
  it('writes one info record per identity and minute, with counts and no SQL', () => {
    const records: Array<{ severity: string; message: string; subject?: string | undefined }> = [];
    const usage = new SqlUsage(
      { record: (severity, _kind, message, o) => records.push({ severity, message, subject: o?.subject }) },
      3_600_000,
    );
    usage.finished('key:a', 'ok', 10, 5);
    usage.finished('key:a', 'refused', 0, 1);
    usage.finished('key:b', 'failed', 0, 2000);
    usage.flush();
    expect(records).toEqual([
      {
        severity: 'info',
        subject: 'key:a',
        message: '/clickhouse in the last minute: key:a: 2 queries (1 refused, 0 failed), 10 rows, 6 ms',
      },
      {
        severity: 'info',
        subject: 'key:b',
        message: '/clickhouse in the last minute: key:b: 1 queries (0 refused, 1 failed), 0 rows, 2000 ms',
      },
    ]);
    usage.flush();
    expect(records).toHaveLength(2);
    usage.close();
  });
});
