// `npm run loadgen -- --events N [--seed S] [--start YYYY-MM-DD] [--days D] [--out FILE]`: generates a
// reproducible synthetic dataset and publishes it (Kafka, or POST /events without Kafka), or writes NDJSON.
import { createWriteStream } from 'node:fs';
import { parseArgs } from 'node:util';
import { handleHelp } from '../core/cli.ts';
import { generateEvents } from '../ingest/loadgen/generate.ts';
import { createPublisher, publishAll } from '../ingest/publisher.ts';
import { configOrExit, createLogger } from './runtime.ts';

const usage =
  'usage: npm run loadgen -- --events N [--seed S] [--start YYYY-MM-DD] [--days D] [--duplicates RATE] [--out FILE]';
handleHelp(
  `${usage}\n\nGenerates a reproducible synthetic dataset (teams, users, sessions, logs, some duplicates) and publishes\nit to Kafka (KAFKA_BROKERS) or to POST /events of a running npm start; with --out, writes NDJSON instead.\n  --events N         how many events (required)\n  --seed S           generator seed (default 1)\n  --start YYYY-MM-DD first day (default 2025-01-01)\n  --days D           days of data (default 90)\n  --duplicates RATE  share of events sent twice (default 0.02)\n  --out FILE         write NDJSON to FILE instead of publishing`,
);
function fail(msg: string): never {
  process.stderr.write(`${msg}\n${usage}\n`);
  process.exit(2);
}
let values: Record<string, string | undefined>;
try {
  ({ values } = parseArgs({
    options: {
      events: { type: 'string' },
      seed: { type: 'string' },
      start: { type: 'string' },
      days: { type: 'string' },
      duplicates: { type: 'string' },
      out: { type: 'string' },
    },
  }));
} catch (err) {
  fail((err as Error).message);
}
const int = (name: string, v: string | undefined, def: number) => {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) fail(`--${name} must be a non-negative integer`);
  return n;
};
const events = int('events', values.events, 0);
if (events < 1) fail('--events is required');
const duplicateRate = values.duplicates === undefined ? 0.02 : Number(values.duplicates);
if (!(duplicateRate >= 0 && duplicateRate < 1)) fail('--duplicates must be a rate in [0, 1)');
if (values.start !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(values.start))
  fail('--start must be YYYY-MM-DD');

const stream = generateEvents({
  events,
  seed: int('seed', values.seed, 1),
  days: int('days', values.days, 90),
  duplicateRate,
  ...(values.start ? { start: values.start } : {}),
});

if (values.out) {
  const out = createWriteStream(values.out);
  for (const e of stream) {
    if (!out.write(`${JSON.stringify(e)}\n`)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r) => out.end(r));
  process.stdout.write(`wrote ${events} events to ${values.out}\n`);
} else {
  const publisher = await createPublisher(configOrExit(), createLogger('fatal', 'tally-loadgen'));
  const lines = (function* () {
    for (const e of stream) yield JSON.stringify(e);
  })();
  process.stdout.write(`${await publishAll(publisher, lines, events)}\n`);
}
