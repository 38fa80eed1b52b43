// `npm run dlq -- list [--reason R] [--json]` shows dead letters with their reasons;
// `npm run dlq -- replay [--reason R]` re-validates them and sends the ones that now pass back to their topic.
import { parseArgs } from 'node:util';
import { handleHelp } from '../core/cli.ts';
import { readDeadLetters, replayDeadLetters } from '../ingest/dlq-tools.ts';
import { createKafka, createProducer } from '../ingest/kafka.ts';
import { configOrExit, createLogger } from './runtime.ts';

const usage = 'usage: npm run dlq -- list|replay [--reason TEXT] [--json]';
handleHelp(
  `${usage}\n\n  list    the dead letters of both source topics: when, source topic/partition@offset, reason, a preview\n  replay  validates them again and sends those that now pass back to their source topic (idempotent:\n          an event stored twice changes no answer); the rest are listed as still invalid\n  --reason TEXT  only letters whose reason contains TEXT (case-insensitive)\n  --json         list as JSON lines`,
);
let parsed: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    allowPositionals: true,
    options: { reason: { type: 'string' }, json: { type: 'boolean' } },
  });
}
try {
  parsed = parse();
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${usage}\n`);
  process.exit(2);
}
const [command] = parsed.positionals;
if (command !== 'list' && command !== 'replay') {
  process.stderr.write(`${usage}\n`);
  process.exit(2);
}
const config = configOrExit();
if (!config.kafka.brokers) {
  process.stderr.write('tally: the dead-letter topics live in Kafka: set KAFKA_BROKERS\n');
  process.exit(2);
}
const kafka = createKafka({
  brokers: config.kafka.brokers,
  clientId: 'tally-dlq',
  logger: createLogger('error', 'tally-dlq'),
});
const letters = await readDeadLetters(
  kafka,
  [config.kafka.topicSessions, config.kafka.topicLogs],
  parsed.values.reason,
);

if (command === 'list') {
  for (const l of letters) {
    if (parsed.values.json) {
      process.stdout.write(
        `${JSON.stringify({
          ...l,
          key: l.key?.toString('utf8') ?? null,
          value: l.value?.toString('utf8') ?? null,
          // The source message's own headers as text (a CloudEvent's ce_* attributes, a trace id).
          headers: Object.fromEntries(
            Object.entries(l.headers).map(([k, v]) => [k, Array.isArray(v) ? v.map(String) : String(v)]),
          ),
        })}\n`,
      );
    } else {
      const preview = (l.value?.toString('utf8') ?? '').replace(/\s+/g, ' ').slice(0, 80);
      process.stdout.write(
        `${l.failedAt}  ${l.sourceTopic}/${l.sourcePartition}@${l.sourceOffset}  ${l.reason}\n    ${preview}\n`,
      );
    }
  }
  process.stderr.write(
    `${letters.length} dead letter(s)${parsed.values.reason ? ` matching "${parsed.values.reason}"` : ''}\n`,
  );
} else {
  const producer = createProducer(kafka);
  await producer.connect();
  try {
    const outcome = await replayDeadLetters(producer, letters);
    for (const s of outcome.stillInvalid) {
      process.stderr.write(`still invalid: ${s.record.sourceTopic}@${s.record.sourceOffset}: ${s.reason}\n`);
    }
    process.stdout.write(
      `replayed ${outcome.replayed} of ${letters.length} dead letter(s); ${outcome.stillInvalid.length} still invalid\n`,
    );
  } finally {
    await producer.disconnect();
  }
}
