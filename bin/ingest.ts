// `npm run ingest`: one Kafka ingester of the consumer group, for a distributed deployment (needs
// CLICKHOUSE_URL and KAFKA_BROKERS). Run several: they share the topics' partitions.
import { createProbeApp } from '../api/probes.ts';
import { SelfLog } from '../clickhouse/self-log.ts';
import { ENV_HELP, handleHelp, parseFlags } from '../core/cli.ts';
import {
  configOrExit,
  createLogger,
  onShutdown,
  openStorage,
  orExit,
  serveApp,
  startIngester,
} from './runtime.ts';

handleHelp(
  `usage: npm run ingest\n\nOne Kafka ingester of the consumer group KAFKA_GROUP_ID: needs CLICKHOUSE_URL and KAFKA_BROKERS. Run several\nto share the topics' partitions. Serves /healthz, /readyz and /metrics on PORT / HOST.\n\n${ENV_HELP}`,
);
parseFlags('npm run ingest', {});
const config = configOrExit();
if (!config.clickhouse.url || !config.kafka.brokers) {
  process.stderr.write('tally: npm run ingest needs CLICKHOUSE_URL and KAFKA_BROKERS\n');
  process.exit(2);
}
const logger = createLogger(config.logLevel, 'tally-ingest');
const ch = await orExit(config, () => openStorage(config, logger));
const selfLog = new SelfLog(ch);
const ingester = startIngester(config, ch, logger, selfLog);
// /healthz, /readyz (503 naming the reason once the ingester cannot consume for 30 s) and /metrics on PORT.
const probes = await orExit(config, () => serveApp(config, createProbeApp({ ch, logger, ingester }).fetch));
process.stdout.write(
  `Tally ingester consuming ${config.kafka.topicSessions}, ${config.kafka.topicLogs}; probes on ${probes.url}\n`,
);
onShutdown(logger, async () => {
  await probes.stop();
  await ingester.stop();
  await selfLog.close();
  await ch.close();
});
