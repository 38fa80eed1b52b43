// Malformed messages, each broken in one known way, for dead-letter and POST /events rejection tests.
import { LIMITS } from '../../core/events.ts';
import { Rng } from './random.ts';

export interface InvalidExample {
  name: string;
  /** The message exactly as it would be published (Kafka value / NDJSON line). */
  text: string;
  /**
   * The field parseEvent names first (its error starts with `${field}:`), or null when the message is not a
   * JSON object at all (not JSON text, an array, a number...).
   */
  field: string | null;
}

/** A dozen-odd malformed messages; the seed varies ids and values, so several runs do not collide. */
export function* generateInvalid(seed: number): Generator<InvalidExample> {
  const rng = new Rng(seed, 'invalid');
  let n = 0;
  const id = () => `bad-${seed}-${n++}`;
  const usage = (): Record<string, unknown> => ({
    event_id: id(),
    type: 'activity',
    timestamp: `2025-01-${String(rng.int(10, 28))}T${String(rng.int(10, 23))}:00:00.000Z`,
    user_id: `u-${rng.int(1, 99)}`,
    team_id: `t-${rng.int(1, 9)}`,
    service: 'billing',
  });
  const log = (): Record<string, unknown> => ({
    event_id: id(),
    type: 'log',
    timestamp: '2025-05-21T10:15:30Z',
    severity: 'error',
    service: 'exporter',
    message: 'Report export failed due to timeout',
  });
  const json = (name: string, field: string | null, value: unknown): InvalidExample => ({
    name,
    text: JSON.stringify(value),
    field,
  });
  const without = (o: Record<string, unknown>, key: string) => {
    const copy = { ...o };
    delete copy[key];
    return copy;
  };

  const truncated = JSON.stringify(usage());
  yield { name: 'truncated JSON', text: truncated.slice(0, rng.int(10, truncated.length - 2)), field: null };
  yield { name: 'not JSON at all', text: `hello world ${rng.int(1, 1000)}`, field: null };
  yield json('JSON array instead of an object', null, [usage()]);
  yield json('JSON number', null, rng.int(1, 1000));
  yield json('missing event_id', 'event_id', without(usage(), 'event_id'));
  yield json('missing type', 'type', without(usage(), 'type'));
  yield json('unknown type', 'type', { ...usage(), type: 'click' });
  yield json('user_id is a number', 'user_id', { ...usage(), user_id: rng.int(1, 1000) });
  yield json('empty team_id', 'team_id', { ...usage(), team_id: '' });
  yield json('session_start without session_id', 'session_id', { ...usage(), type: 'session_start' });
  yield json('timestamp without a zone', 'timestamp', { ...usage(), timestamp: '2025-01-02T10:00:00' });
  yield json('timestamp before 2000', 'timestamp', { ...usage(), timestamp: '1970-01-01T00:00:00Z' });
  yield json('timestamp far in the future', 'timestamp', { ...usage(), timestamp: '2999-01-01T00:00:00Z' });
  yield json('impossible calendar date', 'timestamp', { ...usage(), timestamp: '2025-02-30T10:00:00Z' });
  yield json('timestamp is a number', 'timestamp', { ...usage(), timestamp: 1735812000000 });
  yield json('over-long event_id', 'event_id', { ...usage(), event_id: 'x'.repeat(LIMITS.eventId + 1) });
  yield json('over-long user_id', 'user_id', { ...usage(), user_id: 'u'.repeat(LIMITS.id + 1) });
  yield json('attribute value not a string', 'attributes', { ...usage(), attributes: { plan: 3 } });
  yield json('log with unknown severity', 'severity', { ...log(), severity: 'fatal' });
  yield json('log without message', 'message', without(log(), 'message'));
  yield json('over-long log message', 'message', { ...log(), message: 'm'.repeat(LIMITS.message + 1) });
}

export function invalidExamples(seed: number): InvalidExample[] {
  return [...generateInvalid(seed)];
}
