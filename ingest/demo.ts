// Demo data for a first look: a generated, realistic month (the 30 UTC days before today) stored straight into
// the raw tables, so every route and the dashboard answer something on the first try. Loaded once per data
// directory; the marker file records that it was.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEvent } from '../core/events.ts';
import type { EventSink, IncomingEvent, WriteReceipt } from '../core/sink.ts';
import { generateEvents } from './loadgen/generate.ts';

export const DEMO_EVENTS = 60_000;
export const DEMO_SEED = 2026;
/** How long `npm run demo` waits for its events to be stored through Kafka before it says they are not. */
export const DEMO_WAIT_MS = 60_000;

export interface DemoResult extends WriteReceipt {
  loaded: boolean;
  events: number;
  start: string;
}

/** The first day of the demo month: 30 days before today (UTC), so the month ends yesterday. */
export function demoStart(nowMs: number = Date.now()): string {
  const today = Date.UTC(
    new Date(nowMs).getUTCFullYear(),
    new Date(nowMs).getUTCMonth(),
    new Date(nowMs).getUTCDate(),
  );
  return new Date(today - 30 * 86_400_000).toISOString().slice(0, 10);
}

export async function loadDemo(
  sink: EventSink,
  dataDir: string,
  nowMs: number = Date.now(),
): Promise<DemoResult> {
  const marker = join(dataDir, 'demo-loaded');
  const start = demoStart(nowMs);
  if (existsSync(marker)) return { loaded: false, events: 0, start, waitStored: async () => 0 };
  let batch: IncomingEvent[] = [];
  let events = 0;
  const receipts: WriteReceipt[] = [];
  for (const raw of generateEvents({ events: DEMO_EVENTS, seed: DEMO_SEED, start, days: 30 })) {
    const r = parseEvent(raw, nowMs);
    if (!r.ok) continue;
    batch.push({ raw, event: r.event });
    if (batch.length >= 10_000) {
      receipts.push(await sink.write(batch));
      events += batch.length;
      batch = [];
    }
  }
  if (batch.length > 0) receipts.push(await sink.write(batch));
  events += batch.length;
  // Durable from here (inserted, or acknowledged by Kafka): a restart must not load the month twice.
  writeFileSync(marker, `${new Date(nowMs).toISOString()} ${events} events from ${start}\n`);
  return {
    loaded: true,
    events,
    start,
    async waitStored(timeoutMs) {
      const pending = await Promise.all(receipts.map((r) => r.waitStored(timeoutMs)));
      return pending.reduce((a, b) => a + b, 0);
    },
  };
}
