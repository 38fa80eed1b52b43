// Where POST /events hands validated events: straight to the raw tables when there is no Kafka, to the
// source topics when there is. Either way, when write() resolves the events are durable.
import type { ParsedEvent } from './events.ts';

export interface IncomingEvent {
  /** The event as the client sent it (re-validated by the ingester if it goes through Kafka). */
  raw: unknown;
  event: ParsedEvent;
}

export interface EventSink {
  readonly kind: 'clickhouse' | 'kafka';
  write(events: readonly IncomingEvent[]): Promise<void>;
}
