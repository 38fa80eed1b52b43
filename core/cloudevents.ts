// CloudEvents (v1.0) mapped onto the event schema, for producers that already speak them: structured mode on
// POST /events (`application/cloudevents+json`, `application/cloudevents-batch+json`) and binary mode on Kafka
// (`ce_*` headers, the event's fields as the message value). The mapped event is then validated like any other.
//
// Mapping: `type` is a Tally event type, or ends in `.<type>` (`com.example.billing.session_start`);
// `time` is the event's `timestamp` and is required (an event without a time cannot be counted on a day);
// `data` (a JSON object) holds the other fields; `event_id` is derived from (`source`, `id`), the pair that
// identifies a CloudEvent, so the same id from two sources is two events and a redelivery is one.
import { createHash } from 'node:crypto';
import { PayloadTooLarge, ValidationError } from './errors.ts';
import { USAGE_TYPES } from './events.ts';

const TYPES: readonly string[] = [...USAGE_TYPES, 'log'];

export type CloudMapping = { ok: true; raw: Record<string, unknown> } | { ok: false; error: string };

/** The event_id of the CloudEvent (`source`, `id`): stable, at most 128 characters, never mixing the pair up. */
export function cloudEventId(source: string, id: string): string {
  return `ce-${createHash('sha256')
    .update(JSON.stringify([source, id]))
    .digest('hex')
    .slice(0, 40)}`;
}

function tallyType(ceType: string): string | undefined {
  if (TYPES.includes(ceType)) return ceType;
  const last = ceType.slice(ceType.lastIndexOf('.') + 1);
  return ceType.includes('.') && TYPES.includes(last) ? last : undefined;
}

/** Maps a CloudEvent's context attributes and data onto the event schema's fields, or says what is missing. */
export function fromCloudEvent(attributes: Record<string, unknown>, data: unknown): CloudMapping {
  const str = (name: string): string | undefined => {
    const v = attributes[name];
    return typeof v === 'string' && v.length > 0 ? v : undefined;
  };
  if (attributes.specversion !== undefined && attributes.specversion !== '1.0') {
    return { ok: false, error: 'specversion: only CloudEvents 1.0 is supported' };
  }
  for (const name of ['id', 'source', 'type'] as const) {
    if (str(name) === undefined) return { ok: false, error: `${name}: is required for a CloudEvent` };
  }
  const time = str('time');
  if (time === undefined) return { ok: false, error: 'time: is required for a CloudEvent' };
  const type = tallyType(str('type') as string);
  if (type === undefined) {
    return {
      ok: false,
      error: `type: a CloudEvent type must be one of ${TYPES.join(', ')}, or end in .<one of them>`,
    };
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return { ok: false, error: 'data: a CloudEvent must carry the event fields as a JSON object' };
  }
  return {
    ok: true,
    raw: {
      ...(data as Record<string, unknown>),
      event_id: cloudEventId(str('source') as string, str('id') as string),
      type,
      timestamp: time,
    },
  };
}

/** A structured-mode CloudEvent (one JSON object with its attributes and `data`). */
export function fromStructured(value: unknown): CloudMapping {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, error: 'a CloudEvent must be a JSON object' };
  }
  const { data, ...attributes } = value as Record<string, unknown>;
  return fromCloudEvent(attributes, data);
}

/** True for the structured-mode media types of POST /events. */
export function isCloudEventsMediaType(contentType: string | undefined): 'one' | 'batch' | undefined {
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase();
  if (type === 'application/cloudevents+json') return 'one';
  if (type === 'application/cloudevents-batch+json') return 'batch';
  return undefined;
}

type HeaderValue = Buffer | string | (Buffer | string)[] | undefined;

/**
 * Binary mode on Kafka: the attributes in `ce_*` headers, the data as the value. Undefined when the message
 * carries no `ce_specversion` header (an ordinary message).
 */
export function cloudAttributesFromHeaders(
  headers: Record<string, HeaderValue> | undefined,
): Record<string, string> | undefined {
  if (!headers) return undefined;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (!lower.startsWith('ce_') || value === undefined) continue;
    const one = Array.isArray(value) ? value[0] : value;
    if (one !== undefined) out[lower.slice(3)] = one.toString();
  }
  return out.specversion === undefined ? undefined : out;
}

/** A structured-mode body: one CloudEvent (a JSON object) or a batch (a JSON array of them). */
export function parseCloudEventsBody(text: string, mode: 'one' | 'batch', maxEvents: number): unknown[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ValidationError('body', `is not valid JSON: ${(err as Error).message}`);
  }
  if (mode === 'one') {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new ValidationError(
        'body',
        'application/cloudevents+json must be one CloudEvent (a JSON object)',
      );
    }
    return [value];
  }
  if (!Array.isArray(value)) {
    throw new ValidationError(
      'body',
      'application/cloudevents-batch+json must be a JSON array of CloudEvents',
    );
  }
  if (value.length > maxEvents) throw new PayloadTooLarge(`at most ${maxEvents} events per request`);
  return value;
}
