// Dead letters: a message that cannot be stored goes to `<topic>.dlq` with its original key and bytes and
// where it came from and why in headers. It is written (acknowledged by all in-sync replicas) before the
// source offset is committed, so nothing is lost; if it cannot be written, the batch fails and is retried.
import type { DeadLetter } from './batcher.ts';
import type { MessageHeaders } from './decode.ts';
import type { Producer } from './kafka.ts';

export const DLQ_HEADERS = {
  reason: 'x-dlq-reason',
  topic: 'x-dlq-source-topic',
  partition: 'x-dlq-source-partition',
  offset: 'x-dlq-source-offset',
  at: 'x-dlq-failed-at',
} as const;

/** A message's headers without any dead-letter header it may carry already (a letter replayed and refused again). */
export function sourceHeaders(headers: MessageHeaders | undefined): MessageHeaders {
  const out: MessageHeaders = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (!name.toLowerCase().startsWith('x-dlq-') && value !== undefined) out[name] = value;
  }
  return out;
}

export function dlqTopic(topic: string): string {
  return `${topic}.dlq`;
}

export async function sendDeadLetters(
  producer: Producer,
  source: { topic: string; partition: number },
  dead: readonly DeadLetter[],
): Promise<void> {
  if (dead.length === 0) return;
  const at = new Date().toISOString();
  await producer.send({
    topic: dlqTopic(source.topic),
    acks: -1,
    messages: dead.map((d) => ({
      key: d.key,
      value: d.value ?? Buffer.alloc(0),
      headers: {
        // The source's own headers travel along (a binary-mode CloudEvent's attributes are there, and a replay
        // needs them); the dead-letter headers come last and win.
        ...sourceHeaders(d.headers),
        [DLQ_HEADERS.reason]: d.reason,
        [DLQ_HEADERS.topic]: source.topic,
        [DLQ_HEADERS.partition]: String(source.partition),
        [DLQ_HEADERS.offset]: d.offset,
        [DLQ_HEADERS.at]: at,
      },
    })),
  });
}
