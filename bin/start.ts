// `npm start`: the whole service in one process: API, ingester (when KAFKA_BROKERS is set) and storage,
// on the embedded ClickHouse engine unless CLICKHOUSE_URL names a server.

import { exportDeps, startExportWorkers } from '../api/exports/setup.ts';
import { startSchedules } from '../api/schedules/setup.ts';
import { ENV_HELP, handleHelp } from '../core/cli.ts';
import { loadOrCreateSecret, mintToken } from '../core/tokens.ts';
import type { Ingester } from '../ingest/consumer.ts';
import { loadDemo } from '../ingest/demo.ts';
import {
  configOrExit,
  createLogger,
  createSink,
  onShutdown,
  openStorage,
  startApi,
  startIngester,
} from './runtime.ts';

handleHelp(
  `usage: npm start [-- --demo]\n\nThe whole service in one process: the HTTP API, the export worker and scheduler, and the Kafka ingester\nwhen KAFKA_BROKERS is set; storage is the embedded ClickHouse under DATA_DIR unless CLICKHOUSE_URL is set.\n  --demo   load a generated month of data once (npm run demo) and print a token\n\n${ENV_HELP}`,
);
const config = configOrExit();
const logger = createLogger(config.logLevel);
const secret = loadOrCreateSecret(config.dataDir, config.auth.jwtSecret);
const ch = await openStorage(config, logger);
const sink = await createSink(config, ch, logger);
// `npm run demo` (npm start -- --demo): a generated month of data, loaded once, and a token to read it with.
const demo = process.argv.includes('--demo');
if (demo) {
  const result = await loadDemo(sink, config.dataDir);
  process.stdout.write(
    result.loaded
      ? `Demo: loaded ${result.events} generated events for the 30 days from ${result.start}.\n`
      : 'Demo: data already loaded in this data directory.\n',
  );
}
// In the background: the API below listens at once, whether Kafka answers or not (/readyz shows the ingester).
const ingester: Ingester | undefined = config.kafka.brokers ? startIngester(config, ch, logger) : undefined;
// exports: the worker runs in this process; a queued job wakes it at once.
const exportWorkers = startExportWorkers(config, ch, logger);
const exports = exportDeps(config, ch, exportWorkers.notify);
// schedules: the scheduler queues each closed period's job; the workers' finished jobs fire webhooks.
const schedules = startSchedules(config, ch, logger, exportWorkers.workers, exportWorkers.notify);
const api = await startApi(config, {
  ch,
  sink,
  secret: secret.value,
  logger,
  exports,
  ...(ingester ? { ingester } : {}),
});

process.stdout.write(
  `Tally listening on ${api.url} (storage: ${ch.embedded ? `embedded ClickHouse in ${config.dataDir}` : 'ClickHouse server'}, ` +
    `events: ${config.kafka.brokers ? `Kafka ${config.kafka.brokers.join(',')}` : 'POST /events'})\n`,
);
if (demo && !secret.created) {
  const token = await mintToken(secret.value, {
    sub: 'demo',
    ttlSeconds: 24 * 3600,
    issuer: config.auth.issuer,
    audience: config.auth.audience,
  });
  process.stdout.write(
    `Demo token (all scopes, valid 24 hours):\n${token}\nOpen ${api.url}/ and paste it.\n`,
  );
}
if (secret.created) {
  const token = await mintToken(secret.value, {
    sub: 'admin',
    ttlSeconds: 30 * 24 * 3600,
    issuer: config.auth.issuer,
    audience: config.auth.audience,
  });
  process.stdout.write(
    `First start: generated a signing secret in ${config.dataDir}. Admin token (all scopes, valid 30 days):\n${token}\n` +
      'Mint more with: npm run token -- --sub NAME\n',
  );
}

onShutdown(logger, async () => {
  await api.stop();
  await schedules.stop();
  await exportWorkers.stop();
  await ingester?.stop();
  await sink.stop();
  await ch.close();
});
