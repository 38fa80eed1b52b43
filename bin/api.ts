// `npm run api`: the HTTP API alone, for a distributed deployment (needs CLICKHOUSE_URL).

import { exportDeps } from '../api/exports/setup.ts';
import { ENV_HELP, handleHelp } from '../core/cli.ts';
import { loadOrCreateSecret } from '../core/tokens.ts';
import { configOrExit, createLogger, createSink, onShutdown, openStorage, startApi } from './runtime.ts';

handleHelp(
  `usage: npm run api\n\nThe HTTP API alone, for a distributed deployment: needs CLICKHOUSE_URL (a ClickHouse server).\n\n${ENV_HELP}`,
);
const config = configOrExit();
if (!config.clickhouse.url) {
  process.stderr.write(
    'tally: npm run api needs CLICKHOUSE_URL (the embedded engine belongs to npm start)\n',
  );
  process.exit(2);
}
const logger = createLogger(config.logLevel, 'tally-api');
const secret = loadOrCreateSecret(config.dataDir, config.auth.jwtSecret);
const ch = await openStorage(config, logger);
const sink = await createSink(config, ch, logger);
const api = await startApi(config, {
  ch,
  sink,
  secret: secret.value,
  logger,
  exports: exportDeps(config, ch),
});
process.stdout.write(`Tally API listening on ${api.url}\n`);
onShutdown(logger, async () => {
  await api.stop();
  await sink.stop();
  await ch.close();
});
