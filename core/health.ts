// What a component reports about itself for /readyz and /metrics. Shared by the ingester (which reports) and
// the API (which serves it), so neither lane imports the other.

/** Lag of one source topic: messages not yet stored, and how old the newest message read from it is. */
export interface TopicLag {
  messages: number;
  seconds: number;
}

export interface IngestStatus {
  /**
   * starting: connecting to Kafka; joining: connected, waiting for partitions; consuming: member of the group;
   * restarting: the consumer stopped and is restarted after a backoff; stopped: shut down on purpose.
   */
  state: 'starting' | 'joining' | 'consuming' | 'restarting' | 'stopped';
  /** Why it cannot consume right now (absent when it can). */
  reason?: string;
  /** Since when it cannot consume (ISO time; absent when it can). */
  since?: string;
  /** True once it has not been able to consume for longer than the grace period, with lag or disconnected. */
  failing: boolean;
  /** Per source topic, from the group's committed offsets (refreshed every few seconds). */
  lag: Record<string, TopicLag>;
  /** When the last message was read (ISO time), if any. */
  last_message_at?: string;
}

/** Something that can tell how it is doing; the ingester is one. */
export interface StatusSource {
  status(): IngestStatus;
}
