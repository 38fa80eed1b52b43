// Working with dead letters: read them back with their reasons, and replay the ones that now pass validation
// (after a fix to the producer or to the schema) to their source topic. Replaying is idempotent: a valid
// event carries its event_id, and an event stored twice changes no answer.
import { randomUUID } from 'node:crypto';
import { decodeMessage as decode, type MessageHeaders } from './decode.ts';
import { DLQ_HEADERS, dlqTopic, sourceHeaders } from './dlq.ts';
import type { Kafka, Producer } from './kafka.ts';

export interface DeadLetterRecord {
  dlqTopic: string;
  dlqPartition: number;
  dlqOffset: string;
  reason: string;
  sourceTopic: string;
  sourcePartition: string;
  sourceOffset: string;
  failedAt: string;
  key: Buffer | null;
  value: Buffer | null;
  /** The source message's own headers (without the dead-letter ones). */
  headers: MessageHeaders;
}

function header(h: Record<string, unknown> | undefined, name: string): string {
  const v = h?.[name];
  return v === undefined || v === null ? '' : String(v);
}

/**
 * Every dead letter of the source topics' DLQs up to their current end, optionally filtered by reason; one per
 * source message. A batch re-formed after a crash writes its dead letters again (the letters are sent before
 * the insert, and the crash may come in between), so a second letter of the same source topic, partition and
 * offset is the same letter and is left out.
 */
export async function readDeadLetters(
  kafka: Kafka,
  sourceTopics: readonly string[],
  reasonFilter?: string,
): Promise<DeadLetterRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  const groupId = `tally-dlq-reader-${randomUUID()}`;
  const out: DeadLetterRecord[] = [];
  const seen = new Set<string>();
  try {
    const existing = new Set(await admin.listTopics());
    const topics = sourceTopics.map(dlqTopic).filter((t) => existing.has(t));
    // The end of each partition now: reading stops there, so the command ends.
    const remaining = new Map<string, bigint>();
    for (const t of topics) {
      for (const p of await admin.fetchTopicOffsets(t)) {
        if (BigInt(p.high) > BigInt(p.low)) remaining.set(`${t}/${p.partition}`, BigInt(p.high));
      }
    }
    if (remaining.size === 0) return out;
    const consumer = kafka.consumer({ groupId });
    await consumer.connect();
    try {
      let done!: () => void;
      const finished = new Promise<void>((r) => {
        done = r;
      });
      await consumer.subscribe({ topics, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ topic, partition, message }) => {
          const end = remaining.get(`${topic}/${partition}`);
          if (end === undefined) return;
          const reason = header(message.headers, DLQ_HEADERS.reason);
          const source = [DLQ_HEADERS.topic, DLQ_HEADERS.partition, DLQ_HEADERS.offset].map((h) =>
            header(message.headers, h),
          );
          const sourceKey = source.every((v) => v !== '') ? source.join('\u0000') : undefined;
          const again = sourceKey !== undefined && seen.has(sourceKey);
          if (sourceKey !== undefined) seen.add(sourceKey);
          if (!again && (!reasonFilter || reason.toLowerCase().includes(reasonFilter.toLowerCase()))) {
            out.push({
              dlqTopic: topic,
              dlqPartition: partition,
              dlqOffset: message.offset,
              reason,
              sourceTopic: header(message.headers, DLQ_HEADERS.topic),
              sourcePartition: header(message.headers, DLQ_HEADERS.partition),
              sourceOffset: header(message.headers, DLQ_HEADERS.offset),
              failedAt: header(message.headers, DLQ_HEADERS.at),
              key: message.key,
              value: message.value,
              headers: sourceHeaders(message.headers),
            });
          }
          if (BigInt(message.offset) + 1n >= end) {
            remaining.delete(`${topic}/${partition}`);
            if (remaining.size === 0) done();
          }
        },
      });
      await finished;
    } finally {
      await consumer.disconnect();
    }
  } finally {
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect();
  }
  return out.sort((a, b) => a.failedAt.localeCompare(b.failedAt) || a.dlqOffset.localeCompare(b.dlqOffset));
}

export interface ReplayOutcome {
  replayed: number;
  stillInvalid: { record: DeadLetterRecord; reason: string }[];
}

/** Validates each dead letter again; the valid ones go back to their source topic with their original key. */
export async function replayDeadLetters(
  producer: Producer,
  letters: readonly DeadLetterRecord[],
  nowMs: number = Date.now(),
): Promise<ReplayOutcome> {
  const outcome: ReplayOutcome = { replayed: 0, stillInvalid: [] };
  const byTopic = new Map<string, { key: Buffer | null; value: Buffer | null; headers: MessageHeaders }[]>();
  for (const record of letters) {
    const r = decode(record.value, nowMs, record.headers);
    if (!r.ok || !record.sourceTopic) {
      outcome.stillInvalid.push({ record, reason: r.ok ? 'no source topic header' : r.error });
      continue;
    }
    const list = byTopic.get(record.sourceTopic) ?? [];
    list.push({ key: record.key, value: record.value, headers: record.headers });
    byTopic.set(record.sourceTopic, list);
    outcome.replayed += 1;
  }
  for (const [topic, messages] of byTopic) {
    for (let i = 0; i < messages.length; i += 1_000) {
      await producer.send({ topic, acks: -1, messages: messages.slice(i, i + 1_000) });
    }
  }
  return outcome;
}
