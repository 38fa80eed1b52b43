// `npm run produce -- FILE [--url URL]`: publishes an NDJSON file of events (to Kafka, or POST /events without
// Kafka or with --url, honouring Retry-After). Ends with one line: sent, accepted, rejected, retried.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { handleHelp } from '../core/cli.ts';
import {
  createPublisher,
  type Publisher,
  publishAll,
  tallyLine,
  WAIT_DEFAULT_MS,
  waitOption,
} from '../ingest/publisher.ts';
import { configOrExit, createLogger } from './runtime.ts';

const usage = 'usage: npm run produce -- FILE.ndjson [--url URL] [--wait [--wait-ms MS]]';
handleHelp(
  `${usage}\n\nPublishes an NDJSON file of events, line by line and unvalidated (bad lines take the dead-letter path),\nto the Kafka source topics when KAFKA_BROKERS is set (idempotent producer, acks=all), else to POST /events\nof a running npm start, retrying 429 and 503 answers after their Retry-After. Progress on stderr; ends with\none line: sent N, accepted N, rejected N, retried N.\n  --url URL     POST /events of this service (default http://HOST:PORT; with it, Kafka is not used)\n  --wait        end only once every accepted event is queryable (read-your-writes); the line then also\n                says how many are pending, and the exit status is 1 if any still are\n  --wait-ms MS  how long --wait waits at most (default ${WAIT_DEFAULT_MS})`,
);
let file: string | undefined;
let url: string | undefined;
let waitStoredMs: number | undefined;
try {
  const parsed = parseArgs({
    options: { url: { type: 'string' }, wait: { type: 'boolean' }, 'wait-ms': { type: 'string' } },
    allowPositionals: true,
  });
  file = parsed.positionals[0];
  url = parsed.values.url;
  waitStoredMs = waitOption(parsed.values.wait, parsed.values['wait-ms']);
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${usage}\n`);
  process.exit(2);
}
if (!file) {
  process.stderr.write(`${usage}\n`);
  process.exit(2);
}
const path = file;
const config = configOrExit();
// Blank lines are skipped; every other line is sent as it is.
async function* nonEmpty(): AsyncGenerator<string> {
  for await (const line of createInterface({
    input: createReadStream(path),
    crlfDelay: Number.POSITIVE_INFINITY,
  })) {
    if (line.trim().length > 0) yield line;
  }
}
let publisher: Publisher | undefined;
try {
  publisher = await createPublisher(config, createLogger('fatal', 'tally-produce'), {
    ...(url === undefined ? {} : { url }),
    ...(waitStoredMs === undefined ? {} : { waitStoredMs }),
  });
  process.stdout.write(`${await publishAll(publisher, nonEmpty())}\n`);
  if ((publisher.tally.pending ?? 0) > 0) process.exit(1);
} catch (err) {
  // One line, no stack: what went wrong (a wrong address, a missing file) and what was done before it.
  process.stderr.write(
    `produce: ${(err as Error).message}${publisher ? ` (${tallyLine(publisher.tally)})` : ''}\n`,
  );
  process.exit(1);
}
