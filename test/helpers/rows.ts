// Contract events as the rows insertEvents takes, through the same validation as ingestion (any invalid one
// throws: test data is meant to be valid).
import type { EventRows } from '../../clickhouse/inserts.ts';
import { parseEvent } from '../../core/events.ts';

export function rowsOf(list: readonly unknown[]): EventRows {
  const rows: EventRows = { usage: [], logs: [] };
  for (const e of list) {
    const r = parseEvent(e);
    if (!r.ok) throw new Error(r.error);
    if (r.event.kind === 'usage') rows.usage.push(r.event.row);
    else rows.logs.push(r.event.row);
  }
  return rows;
}
