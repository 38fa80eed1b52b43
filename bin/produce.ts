// `npm run produce -- FILE`: publishes an NDJSON file of events (to Kafka, or POST /events without Kafka).
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { createPublisher, Progress } from '../ingest/publisher.ts';
import { configOrExit, createLogger } from './runtime.ts';

const file = process.argv[2];
if (!file || file.startsWith('-')) {
  process.stderr.write('usage: npm run produce -- FILE.ndjson\n');
  process.exit(2);
}
const config = configOrExit();
const publisher = await createPublisher(config, createLogger('fatal', 'tally-produce'));
const progress = new Progress(undefined);
let batch: string[] = [];
try {
  for await (const line of createInterface({
    input: createReadStream(file),
    crlfDelay: Number.POSITIVE_INFINITY,
  })) {
    if (line.trim().length === 0) continue;
    batch.push(line);
    if (batch.length >= 5_000) {
      await publisher.send(batch);
      progress.add(batch.length);
      batch = [];
    }
  }
  await publisher.send(batch);
  progress.add(batch.length);
} finally {
  await publisher.close();
}
process.stdout.write(`${progress.summary(publisher.target)}\n`);
