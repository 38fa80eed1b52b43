// The embedded engine's export bound (EXPORT_SETTINGS: lower priority, nice, one thread, a memory cap) stays on
// the export's own chdb session: the API's queries on the shared connection keep their own settings before,
// during and after an export, and the export's rows are all there.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_QUERY_PRIORITY } from '../../clickhouse/client.ts';
import { embeddedSource } from '../../clickhouse/engine/embedded.ts';
import { EXPORT_SETTINGS } from '../../clickhouse/export-stream.ts';
import { buildLogExportQuery, CLICKHOUSE_FORMAT } from '../../clickhouse/queries/exports.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';

describe.skipIf(process.env.CLICKHOUSE_URL)('the export bound on the embedded engine', () => {
  let engine: TestEngine;
  beforeAll(async () => {
    engine = await openTestEngine();
    await engine.ch.client.command({
      query: `INSERT INTO log_events (event_id, timestamp, severity, service, message)
        SETTINGS insert_deduplicate = 0
        SELECT concat('eb-', toString(number)), toDateTime64('2025-01-01 00:00:00', 3, 'UTC') + number,
          'info', 'svc', 'm' FROM numbers(50000)`,
    });
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  const mainSettings = async (client = engine.ch.client) => {
    const rs = await client.query({
      query: `SELECT getSetting('priority') AS priority, getSetting('os_thread_priority') AS nice,
        getSetting('max_memory_usage') AS mem`,
      format: 'JSONEachRow',
    });
    const [row] = await rs.json<{ priority: string | number; nice: string | number; mem: string | number }>();
    return { priority: String(row?.priority), nice: String(row?.nice), mem: String(row?.mem) };
  };

  it('keeps the bound on the export session and the API priority on the shared connection and the reads', async () => {
    const before = await mainSettings();
    expect(before.priority).toBe(API_QUERY_PRIORITY);
    expect(before.nice).toBe('0');
    // The API's reads: set once on their session (engine/embedded.ts), in force for every read after.
    const reads = await mainSettings(engine.ch.readClient);
    expect(reads).toEqual(before);
    const source = embeddedSource(engine.dataDir, engine.database);
    let rows = 0;
    let during: Awaited<ReturnType<typeof mainSettings>> | undefined;
    try {
      for await (const chunk of source.stream(
        buildLogExportQuery({}, 'csv'),
        CLICKHOUSE_FORMAT.csv,
        new AbortController().signal,
      )) {
        rows += chunk.rows;
        during ??= await mainSettings();
      }
    } finally {
      source.close();
    }
    expect(rows).toBe(50_000);
    expect(during).toEqual(before);
    expect(await mainSettings()).toEqual(before);
    expect(await mainSettings(engine.ch.readClient)).toEqual(before);
    expect(before.mem).not.toBe(EXPORT_SETTINGS.max_memory_usage);
  });
});
