// The sink of POST /events without Kafka: validated events go straight into the raw tables. The insert token
// is a hash of the rows, so a client retrying the same request after a timeout stores nothing twice.
import { createHash } from 'node:crypto';
import type { ClickHouse } from '../clickhouse/client.ts';
import { type EventRows, insertEvents } from '../clickhouse/inserts.ts';
import type { EventSink, IncomingEvent, WriteReceipt } from '../core/sink.ts';

/** An insert is queryable once it returns: nothing to wait for. */
const STORED: WriteReceipt = { waitStored: async () => 0 };

export function createDirectSink(ch: ClickHouse): EventSink {
  return {
    kind: 'clickhouse',
    async write(events: readonly IncomingEvent[]) {
      const rows: EventRows = { usage: [], logs: [] };
      for (const { event } of events) {
        if (event.kind === 'usage') rows.usage.push(event.row);
        else rows.logs.push(event.row);
      }
      const token = `http/${createHash('sha256').update(JSON.stringify(rows)).digest('hex')}`;
      await insertEvents(ch, rows, token);
      return STORED;
    },
  };
}
