// `npm run produce -- FILE`: publishes an NDJSON file of events (to Kafka, or POST /events without Kafka).
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { handleHelp } from '../core/cli.ts';
import { createPublisher, publishAll } from '../ingest/publisher.ts';
import { configOrExit, createLogger } from './runtime.ts';

handleHelp(
  'usage: npm run produce -- FILE.ndjson\n\nPublishes an NDJSON file of events, line by line and unvalidated (bad lines take the dead-letter path),\nto the Kafka source topics when KAFKA_BROKERS is set (idempotent producer, acks=all), else to POST /events\nof a running npm start. Progress on stderr; a summary at the end.',
);
const file = process.argv[2];
if (!file || file.startsWith('-')) {
  process.stderr.write('usage: npm run produce -- FILE.ndjson\n');
  process.exit(2);
}
const config = configOrExit();
const publisher = await createPublisher(config, createLogger('fatal', 'tally-produce'));
// Blank lines are skipped; every other line is sent as it is.
async function* nonEmpty(): AsyncGenerator<string> {
  for await (const line of createInterface({
    input: createReadStream(file as string),
    crlfDelay: Number.POSITIVE_INFINITY,
  })) {
    if (line.trim().length > 0) yield line;
  }
}
process.stdout.write(`${await publishAll(publisher, nonEmpty())}\n`);
