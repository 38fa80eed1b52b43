// What POST /events tells the ingestion ledger about one request (the recorder is ingest/ledger.ts, wired by
// bin/): a type here so that the API and the ingester share it without importing each other.
import type { IncomingEvent } from './sink.ts';

export interface HttpArrivals {
  /** Every item of the request as sent, by index. */
  values: readonly unknown[];
  /** The items refused, by index, with the reason the client was given. */
  rejected: readonly { index: number; error: string }[];
  /** The valid events handed to the sink, one per event_id. */
  accepted: readonly IncomingEvent[];
  /** Through Kafka the ingester records the accepted events as it consumes them; only rejections are ours. */
  viaKafka: boolean;
  /** The team of a team-bound credential: everything it sends counts under its team. */
  team: string | undefined;
  /** The receiving clock: the day of an event without a valid timestamp. */
  nowMs: number;
}

/** Records a request's events once the sink has them; a failure fails the request (the client retries). */
export type HttpLedger = (arrivals: HttpArrivals) => Promise<void>;
