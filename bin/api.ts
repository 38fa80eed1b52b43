// `npm run api`: the HTTP API alone, for a distributed deployment (needs CLICKHOUSE_URL and DATABASE_URL).

import { SelfLog } from '../clickhouse/self-log.ts';
import { ENV_HELP, handleHelp, parseFlags } from '../core/cli.ts';
import { loadOrCreateSecret } from '../core/tokens.ts';
import {
  apiExports,
  checkListenAddress,
  configOrExit,
  createLogger,
  createSink,
  exportParts,
  onShutdown,
  openControlStore,
  openStorage,
  orExit,
  retireLegacyTables,
  startApi,
} from './runtime.ts';

handleHelp(
  `usage: npm run api [-- --port N] [--host H]\n\nThe HTTP API alone, for a distributed deployment: needs CLICKHOUSE_URL (a ClickHouse server)\nand DATABASE_URL (a PostgreSQL server).\n\n${ENV_HELP}`,
);
const flags = parseFlags('npm run api', { port: { type: 'string' }, host: { type: 'string' } });
const config = configOrExit({
  ...process.env,
  ...(flags.port !== undefined ? { PORT: flags.port } : {}),
  ...(flags.host !== undefined ? { HOST: flags.host } : {}),
});
if (!config.clickhouse.url || !config.control.databaseUrl) {
  process.stderr.write(
    `tally: npm run api needs ${!config.clickhouse.url ? 'CLICKHOUSE_URL' : 'DATABASE_URL'} (the embedded stores belong to npm start)\n`,
  );
  process.exit(2);
}
const logger = createLogger(config.logLevel, 'tally-api');
await orExit(config, () => checkListenAddress(config));
const secret = await orExit(config, () => loadOrCreateSecret(config.dataDir, config.auth.jwtSecret));
const control = await orExit(config, () => openControlStore(config, logger));
const ch = await orExit(config, () => openStorage(config, logger));
await orExit(config, () => retireLegacyTables(config, ch, control, logger));
const sink = await createSink(config, ch, logger);
const selfLog = new SelfLog(ch);
const shared = { ch, control, logger, selfLog, parts: exportParts(config) };
const api = await orExit(config, () =>
  startApi(config, shared, { sink, secret: secret.value, exports: apiExports(config, shared) }),
);
process.stdout.write(`Tally API listening on ${api.url}\n`);
onShutdown(logger, async () => {
  await api.stop();
  await sink.stop();
  await selfLog.close();
  await ch.close();
  await control.close();
});
