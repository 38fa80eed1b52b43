// Where POST /events hands validated events: straight to the raw tables when there is no Kafka, to the
// source topics when there is. Either way, when write() resolves the events are durable.
import type { ParsedEvent } from './events.ts';

export interface IncomingEvent {
  /** The event as the client sent it (re-validated by the ingester if it goes through Kafka). */
  raw: unknown;
  event: ParsedEvent;
}

/** What a write leaves behind: a way to wait until its events are queryable (read-your-writes). */
export interface WriteReceipt {
  /** Resolves with 0 once every event is queryable, or after `timeoutMs` with how many are still pending. */
  waitStored(timeoutMs: number): Promise<number>;
}

export interface EventSink {
  readonly kind: 'clickhouse' | 'kafka';
  /** Resolves once the events are durable (inserted, or acknowledged by every in-sync replica). */
  write(events: readonly IncomingEvent[]): Promise<WriteReceipt>;
}
