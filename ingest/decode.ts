// Turns the bytes of one Kafka message into a validated event or a reason for the dead-letter topic.
// A reason starts with what is wrong: a code for the message as a whole (`empty`, `encoding`, `not an object`,
// `not valid JSON`, `message too large`) or the event field at fault (`timestamp: ...`). docs/producers.md "Guarantees" (dead-letter reasons).
import { cloudAttributesFromHeaders, fromCloudEvent } from '../core/cloudevents.ts';
import { type ParseResult, parseEvent } from '../core/events.ts';

/** Messages larger than this are refused whole (an event is a few hundred bytes). */
export const MAX_MESSAGE_BYTES = 512 * 1024;

/** Dead-letter reasons of a message as a whole (the rest name an event field). */
export const REASONS = {
  empty: 'empty',
  encoding: 'encoding: not valid UTF-8',
  notObject: 'not an object: a Kafka message holds one JSON object',
} as const;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Confluent's wire format (the JSON Schema serializer of the Schema Registry clients): a zero byte, a 4-byte
 * schema id, then the JSON. No JSON text starts with a zero byte, so the framing is unambiguous; the schema id
 * is not needed, since the event schema is this service's own.
 */
const CONFLUENT_MAGIC = 0;
const CONFLUENT_HEADER_BYTES = 5;

/** Kafka message headers as kafkajs gives them. */
export type MessageHeaders = Record<string, Buffer | string | (Buffer | string)[] | undefined>;

/**
 * A message's value (and, for a binary-mode CloudEvent, its `ce_*` headers) to a validated event or a reason.
 */
export function decodeMessage(
  value: Buffer | null,
  nowMs: number = Date.now(),
  headers?: MessageHeaders,
): ParseResult {
  // A tombstone (null value) or a zero-length one: nothing to store.
  if (value === null || value.length === 0) return { ok: false, error: REASONS.empty };
  if (value.length > MAX_MESSAGE_BYTES) {
    return { ok: false, error: `message too large: ${value.length} bytes (limit ${MAX_MESSAGE_BYTES})` };
  }
  let body = value;
  if (value[0] === CONFLUENT_MAGIC && value.length > CONFLUENT_HEADER_BYTES)
    body = value.subarray(CONFLUENT_HEADER_BYTES);
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return { ok: false, error: REASONS.encoding };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `not valid JSON: ${(err as Error).message}` };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return {
      ok: false,
      error: `${REASONS.notObject} (got ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json})`,
    };
  }
  // A CloudEvent in binary mode: the attributes travel in ce_* headers, the value is its data.
  const cloud = cloudAttributesFromHeaders(headers);
  if (cloud) {
    const mapped = fromCloudEvent(cloud, json);
    return mapped.ok ? parseEvent(mapped.raw, nowMs) : { ok: false, error: mapped.error };
  }
  return parseEvent(json, nowMs);
}
