// Publishing events to the source topics: usage events keyed by user_id, logs keyed by service, so that one
// user's events stay in order on one partition. Used by POST /events with Kafka and by `npm run produce`.
import type { EventSink, IncomingEvent } from '../core/sink.ts';
import type { Producer } from './kafka.ts';

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
