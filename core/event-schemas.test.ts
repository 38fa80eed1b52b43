import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventJsonSchemas, SCHEMA_NAMES, schemaFileText } from './event-schemas.ts';
import { parseEvent } from './events.ts';

const dir = resolve(import.meta.dirname, '..', 'schemas');

describe('JSON Schema files', () => {
  it('schemas/*.json are exactly what the zod schema generates (run `npm run schemas` after a change)', () => {
    const generated = eventJsonSchemas();
    expect(
      readdirSync(dir)
        .filter((f) => f.endsWith('.json'))
        .sort(),
    ).toEqual(SCHEMA_NAMES.map((n) => `${n}.json`).sort());
    for (const name of SCHEMA_NAMES) {
      expect(readFileSync(join(dir, `${name}.json`), 'utf8'), `schemas/${name}.json`).toBe(
        schemaFileText(generated[name]),
      );
    }
  });

  it('require what the parser requires', () => {
    const now = Date.UTC(2025, 5, 1);
    const valid = {
      usage: {
        event_id: 'e-1',
        type: 'session_start',
        timestamp: '2025-01-02T10:00:00Z',
        user_id: 'u1',
        team_id: 't1',
        service: 'billing',
        session_id: 's1',
      },
      log: {
        event_id: 'l-1',
        type: 'log',
        timestamp: '2025-05-21T10:15:30Z',
        severity: 'warning',
        service: 'exporter',
        message: 'm',
      },
    };
    const schemas = eventJsonSchemas();
    for (const [kind, name] of [
      ['usage', 'usage-event'],
      ['log', 'log-event'],
    ] as const) {
      const event = valid[kind];
      expect(parseEvent(event, now).ok).toBe(true);
      const required = schemas[name].required as string[];
      for (const field of required) {
        const { [field]: _dropped, ...rest } = event as Record<string, unknown>;
        expect(parseEvent(rest, now).ok, `${name} without ${field}`).toBe(false);
      }
      // Every field the parser reads is described.
      expect(Object.keys(schemas[name].properties as object).sort()).toEqual(
        expect.arrayContaining(Object.keys(event).sort()),
      );
    }
  });
});
