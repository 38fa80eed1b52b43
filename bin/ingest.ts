// `npm run ingest`: one Kafka ingester of the consumer group, for a distributed deployment (needs
// CLICKHOUSE_URL and KAFKA_BROKERS). Run several: they share the topics' partitions.
import { configOrExit, createLogger, onShutdown, openStorage, startIngester } from './runtime.ts';

const config = configOrExit();
if (!config.clickhouse.url || !config.kafka.brokers) {
  process.stderr.write('tally: npm run ingest needs CLICKHOUSE_URL and KAFKA_BROKERS\n');
  process.exit(2);
}
const logger = createLogger(config.logLevel, 'tally-ingest');
const ch = await openStorage(config, logger);
const ingester = await startIngester(config, ch, logger);
process.stdout.write(`Tally ingester consuming ${config.kafka.topicSessions}, ${config.kafka.topicLogs}\n`);
onShutdown(logger, async () => {
  await ingester.stop();
  await ch.close();
});
