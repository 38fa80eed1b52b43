// Turns the bytes of one Kafka message into a validated event or a reason for the dead-letter topic.
import { type ParseResult, parseEvent } from '../core/events.ts';

/** Messages larger than this are refused whole (an event is a few hundred bytes). */
export const MAX_MESSAGE_BYTES = 512 * 1024;

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeMessage(value: Buffer | null, nowMs: number = Date.now()): ParseResult {
  if (value === null || value.length === 0) return { ok: false, error: 'empty message' };
  if (value.length > MAX_MESSAGE_BYTES) {
    return { ok: false, error: `message too large: ${value.length} bytes (limit ${MAX_MESSAGE_BYTES})` };
  }
  let text: string;
  try {
    text = utf8.decode(value);
  } catch {
    return { ok: false, error: 'not valid UTF-8' };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `not valid JSON: ${(err as Error).message}` };
  }
  return parseEvent(json, nowMs);
}
