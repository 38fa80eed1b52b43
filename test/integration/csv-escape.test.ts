// One CSV rule, two writers: the API's CSV answers (api/csv.ts, in JavaScript) and the export files (written by
// the engine from clickhouse/queries/exports.ts). Both must escape the same cells and end records the same way
// (core/csv.ts owns the rule); run here on the engine itself rather than by reading the SQL text.
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toCsv } from '../../api/csv.ts';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { buildLogExportQuery, CLICKHOUSE_FORMAT } from '../../clickhouse/queries/exports.ts';
import { CSV_ESCAPES, escapeCell } from '../../core/csv.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { rowsOf } from '../helpers/rows.ts';

// Every lead the rule names, and near misses it must leave alone (a space, a quote or a newline first, a
// full-width equals sign, an empty cell), with quotes, commas and line breaks that CSV itself must quote.
const CELLS = [
  '=1+1',
  '+1',
  '-1',
  '@SUM(A1)',
  '\tx',
  '\rx',
  ' =1',
  "'=1",
  '\n=1',
  'x=1',
  '',
  '＝1',
  '"quoted", with a comma',
  'line\r\nbreak',
  '=a\nb',
];

describe('CSV formula escaping', () => {
  let engine: TestEngine;

  beforeAll(async () => {
    engine = await openTestEngine();
    // Newest first in the export: the i-th cell one second before the (i-1)-th.
    const events = CELLS.map((message, i) => ({
      event_id: `csv-${String(i).padStart(2, '0')}`,
      type: 'log',
      timestamp: new Date(Date.UTC(2025, 0, 2, 12, 0, 0) - i * 1000).toISOString(),
      severity: 'info',
      service: 'csv',
      message,
    }));
    await insertEvents(engine.ch, rowsOf(events), 'csv-escape/1');
  });

  afterAll(async () => {
    await engine?.dispose();
  });

  async function exported(csvEscape: (typeof CSV_ESCAPES)[number]): Promise<string> {
    const source = engine.ch.exportSource();
    const chunks: Buffer[] = [];
    try {
      const q = buildLogExportQuery({ csv_escape: csvEscape }, 'csv');
      for await (const c of source.stream(q, CLICKHOUSE_FORMAT.csv, new AbortController().signal)) {
        chunks.push(Buffer.from(c.bytes));
      }
    } finally {
      source.close();
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  // Records split on CRLF only: a writer ending records with LF would come back as one record and fail.
  const messages = (csv: string) =>
    (parse(csv, { columns: true, record_delimiter: '\r\n' }) as Array<{ message: string }>).map(
      (r) => r.message,
    );

  for (const rule of CSV_ESCAPES) {
    it(`writes the same cells in an export file and an API answer (csv_escape=${rule})`, async () => {
      const want = CELLS.map((c) => escapeCell(c, rule));
      const file = await exported(rule);
      const answer = toCsv(
        ['message'],
        CELLS.map((message) => ({ message })),
        { escape: rule },
      );
      expect(messages(file)).toEqual(want);
      expect(messages(answer)).toEqual(want);
      expect(file.endsWith('\r\n') && answer.endsWith('\r\n')).toBe(true);
      // The rule did something: formula-like cells are in the data.
      if (rule === 'formula') expect(want.filter((w, i) => w !== CELLS[i])).toHaveLength(7);
    });
  }
});
