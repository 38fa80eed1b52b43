// `npm run loadgen -- --events N [--seed S] [--start YYYY-MM-DD] [--days D] [--url URL] [--out FILE] [--answers FILE]`:
// generates a reproducible synthetic dataset and publishes it (Kafka, or POST /events without Kafka or with
// --url, honouring Retry-After), or writes NDJSON; with --answers, also the routes' expected answers, computed
// from the same events without ClickHouse. Ends with one line: sent, accepted, rejected, retried.
import { createWriteStream, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { handleHelp } from '../core/cli.ts';
import { type Answer, answerFor, sampledAnswers } from '../ingest/loadgen/answers.ts';
import { generateEvents } from '../ingest/loadgen/generate.ts';
import { Truth } from '../ingest/loadgen/truth.ts';
import {
  createPublisher,
  type Publisher,
  publishAll,
  tallyLine,
  WAIT_DEFAULT_MS,
  waitOption,
} from '../ingest/publisher.ts';
import { configOrExit, createLogger } from './runtime.ts';

const usage =
  'usage: npm run loadgen -- --events N [--seed S] [--start YYYY-MM-DD] [--days D] [--duplicates RATE] [--url URL] [--wait [--wait-ms MS]] [--out FILE] [--answers FILE [--samples K] [--ask PATH ...]]';
handleHelp(
  `${usage}\n\nGenerates a reproducible synthetic dataset (teams, users, sessions, logs, some duplicates) and publishes\nit to Kafka (KAFKA_BROKERS) or to POST /events of a running npm start; with --out, writes NDJSON instead.\nOver HTTP, 429 and 503 answers are retried after their Retry-After. Ends with one line:\nsent N, accepted N, rejected N, retried N.\n  --events N         how many events (required)\n  --url URL          POST /events of this service (default http://HOST:PORT; with it, Kafka is not used)\n  --wait             end only once every accepted event is queryable (read-your-writes); the line then also\n                     says how many are pending, and the exit status is 1 if any still are\n  --wait-ms MS       how long --wait waits at most (default ${WAIT_DEFAULT_MS})\n  --seed S           generator seed (default 1)\n  --start YYYY-MM-DD first day (default 2025-01-01)\n  --days D           days of data (default 90)\n  --duplicates RATE  share of events sent twice (default 0.02)\n  --out FILE         write NDJSON to FILE instead of publishing\n  --answers FILE     also write the expected answers (JSON) of report requests over this data, computed\n                     without ClickHouse: K sampled requests per route, and each --ask\n  --samples K        sampled requests per route for --answers (default 20)\n  --ask PATH         a request to answer, e.g. '/reports/usage-summary?start_date=2025-01-01&end_date=2025-01-31&team_id=team-3'\n                     (usage-summary, usage-timeseries, system-events); repeatable`,
);
function fail(msg: string): never {
  process.stderr.write(`${msg}\n${usage}\n`);
  process.exit(2);
}
const parse = () =>
  parseArgs({
    options: {
      events: { type: 'string' },
      seed: { type: 'string' },
      start: { type: 'string' },
      days: { type: 'string' },
      duplicates: { type: 'string' },
      out: { type: 'string' },
      answers: { type: 'string' },
      samples: { type: 'string' },
      ask: { type: 'string', multiple: true },
      url: { type: 'string' },
      wait: { type: 'boolean' },
      'wait-ms': { type: 'string' },
    },
  });
let values: ReturnType<typeof parse>['values'];
try {
  ({ values } = parse());
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

const seed = int('seed', values.seed, 1);
let waitStoredMs: number | undefined;
try {
  waitStoredMs = waitOption(values.wait, values['wait-ms']);
} catch (err) {
  fail((err as Error).message);
}
const asked = values.ask ?? [];
if (asked.length > 0 && !values.answers) fail('--ask needs --answers FILE');
// A request the answers cannot serve is refused before anything is sent.
for (const path of asked) {
  try {
    answerFor(new Truth(), path);
  } catch (err) {
    fail(`--ask ${path}: ${(err as Error).message}`);
  }
}
// Fed while the events go out, so the answers are of exactly the events sent (re-sent ones included).
const truth = values.answers ? new Truth() : undefined;
const generated = generateEvents({
  events,
  seed,
  days: int('days', values.days, 90),
  duplicateRate,
  ...(values.start ? { start: values.start } : {}),
});
const stream = (function* () {
  for (const e of generated) {
    truth?.add(e);
    yield e;
  }
})();

// The run's account (sent, accepted, rejected, retried): the last line printed, whatever else was written.
let closing: string | undefined;
let pending = 0;
if (values.out) {
  const out = createWriteStream(values.out);
  for (const e of stream) {
    if (!out.write(`${JSON.stringify(e)}\n`)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r) => out.end(() => r()));
  process.stdout.write(`wrote ${events} events to ${values.out}\n`);
} else {
  const config = configOrExit();
  const lines = (function* () {
    for (const e of stream) yield JSON.stringify(e);
  })();
  let publisher: Publisher | undefined;
  try {
    publisher = await createPublisher(config, createLogger('fatal', 'tally-loadgen'), {
      ...(values.url === undefined ? {} : { url: values.url }),
      ...(waitStoredMs === undefined ? {} : { waitStoredMs }),
    });
    closing = await publishAll(publisher, lines, events);
    pending = publisher.tally.pending ?? 0;
  } catch (err) {
    // One line, no stack: what went wrong and what was done before it.
    process.stderr.write(
      `loadgen: ${(err as Error).message}${publisher ? ` (${tallyLine(publisher.tally)})` : ''}\n`,
    );
    process.exit(1);
  }
}

if (truth && values.answers) {
  let answers: Answer[];
  try {
    answers = [
      ...sampledAnswers(truth, int('samples', values.samples, 20), seed),
      ...asked.map((path) => answerFor(truth, path)),
    ];
  } catch (err) {
    fail(`--ask: ${(err as Error).message}`);
  }
  writeFileSync(values.answers, `${JSON.stringify({ seed, events, answers }, null, 1)}\n`);
  process.stdout.write(`wrote ${answers.length} expected answers to ${values.answers}\n`);
}
if (closing !== undefined) process.stdout.write(`${closing}\n`);
// --wait that ended with events still pending: a script must not go on as if they were queryable.
if (pending > 0) process.exit(1);
