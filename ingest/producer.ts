// Publishing events to the source topics: usage events keyed by user_id, logs keyed by service, so that one
// user's events stay in order on one partition. Used by POST /events with Kafka and by `npm run produce`.
import { Unavailable } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { EventSink, IncomingEvent } from '../core/sink.ts';
import {
  type CodecName,
  connectAdmin,
  createProducer,
  ensureTopics,
  type Kafka,
  type Producer,
} from './kafka.ts';

export interface Topics {
  sessions: string;
  logs: string;
}

export interface OutgoingMessage {
  topic: string;
  key: string | null;
  value: string;
}

/** Picks topic and key for a raw event object (or anything else, which goes to the usage topic as is). */
export function route(raw: unknown, topics: Topics): { topic: string; key: string | null } {
  const o = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  if (o.type === 'log') return { topic: topics.logs, key: typeof o.service === 'string' ? o.service : null };
  return { topic: topics.sessions, key: typeof o.user_id === 'string' ? o.user_id : null };
}

/** Sends messages grouped by topic and waits for every in-sync replica to acknowledge them. */
export async function publish(producer: Producer, messages: readonly OutgoingMessage[]): Promise<void> {
  const byTopic = new Map<string, { key: string | null; value: string }[]>();
  for (const m of messages) {
    let list = byTopic.get(m.topic);
    if (!list) {
      list = [];
      byTopic.set(m.topic, list);
    }
    list.push({ key: m.key, value: m.value });
  }
  if (byTopic.size === 0) return;
  await producer.sendBatch({
    acks: -1,
    topicMessages: [...byTopic].map(([topic, msgs]) => ({ topic, messages: msgs })),
  });
}

export function createKafkaSink(producer: Producer, topics: Topics): EventSink {
  return {
    kind: 'kafka',
    async write(events: readonly IncomingEvent[]) {
      await publish(
        producer,
        events.map((e) => ({ ...route(e.raw, topics), value: JSON.stringify(e.raw) })),
      );
    },
  };
}

/** How long a write waits for the sink's very first connection before answering 503. */
const FIRST_CONNECT_WAIT_MS = 5_000;

/**
 * The Kafka sink of POST /events for a service that must start, and keep serving, while the broker is away:
 * it connects in the background and again after any failed send. While it is not connected, writes fail at once
 * with Unavailable (503 with Retry-After) instead of holding the request through the client's retries; only
 * before its first connection does a write wait for it a little (the demo's load, or a request right at start,
 * must not fail because the connection was a moment slower than the first write).
 */
export function connectingKafkaSink(
  kafka: Kafka,
  opts: { brokers: readonly string[]; topics: Topics; compression: CodecName; logger: Logger },
): EventSink & { readonly connected: boolean; stop(): Promise<void> } {
  // Two quick retries: a send to a broker that went away fails within seconds, and the client retries.
  const producer = createProducer(kafka, { retries: 2, compression: opts.compression });
  let connected = false;
  let stopped = false;
  let connecting: Promise<void> | undefined;
  let lastError = 'not connected yet';
  let everConnected = false;

  const connect = (): Promise<void> => {
    connecting ??= (async () => {
      for (let attempt = 1; !stopped; attempt++) {
        try {
          const admin = await connectAdmin(kafka, opts.brokers);
          try {
            await ensureTopics(admin, [opts.topics.sessions, opts.topics.logs]);
          } finally {
            await admin.disconnect();
          }
          await producer.connect();
          connected = true;
          everConnected = true;
          if (attempt > 1) opts.logger.info('events: connected to Kafka again');
          return;
        } catch (err) {
          lastError = (err as Error).message;
          if (attempt === 1)
            opts.logger.warn({ err }, 'events: Kafka is not reachable; POST /events answers 503');
          await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** Math.min(attempt, 5))));
        }
      }
    })().finally(() => {
      connecting = undefined;
    });
    return connecting;
  };
  void connect();

  return {
    kind: 'kafka',
    get connected() {
      return connected;
    },
    async write(events: readonly IncomingEvent[]) {
      if (!connected && !everConnected && connecting) {
        await Promise.race([connecting, new Promise((r) => setTimeout(r, FIRST_CONNECT_WAIT_MS).unref())]);
      }
      if (!connected) {
        throw new Unavailable(`the Kafka broker is not reachable (${lastError}); retry later`);
      }
      try {
        await publish(
          producer,
          events.map((e) => ({ ...route(e.raw, opts.topics), value: JSON.stringify(e.raw) })),
        );
      } catch (err) {
        connected = false;
        lastError = (err as Error).message;
        void connect();
        throw new Unavailable(`the Kafka broker did not acknowledge the events (${lastError}); retry later`, {
          cause: err,
        });
      }
    },
    async stop() {
      stopped = true;
      await producer.disconnect().catch(() => undefined);
    },
  };
}
