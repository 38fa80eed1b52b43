// `npm run ingest`: one Kafka ingester of the consumer group, for a distributed deployment (needs
// CLICKHOUSE_URL and KAFKA_BROKERS). Run several: they share the topics' partitions.
import { ENV_HELP, handleHelp, parseFlags } from '../core/cli.ts';
import { configOrExit, createLogger, onShutdown, openStorage, orExit, startIngester } from './runtime.ts';

handleHelp(
  `usage: npm run ingest\n\nOne Kafka ingester of the consumer group KAFKA_GROUP_ID: needs CLICKHOUSE_URL and KAFKA_BROKERS. Run several\nto share the topics' partitions.\n\n${ENV_HELP}`,
);
parseFlags('npm run ingest', {});
const config = configOrExit();
if (!config.clickhouse.url || !config.kafka.brokers) {
  process.stderr.write('tally: npm run ingest needs CLICKHOUSE_URL and KAFKA_BROKERS\n');
  process.exit(2);
}
const logger = createLogger(config.logLevel, 'tally-ingest');
const ch = await orExit(config, () => openStorage(config, logger));
const ingester = await startIngester(config, ch, logger);
process.stdout.write(`Tally ingester consuming ${config.kafka.topicSessions}, ${config.kafka.topicLogs}\n`);
onShutdown(logger, async () => {
  await ingester.stop();
  await ch.close();
});
