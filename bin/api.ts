// `npm run api`: the HTTP API alone, for a distributed deployment (needs CLICKHOUSE_URL and DATABASE_URL).

import { ENV_HELP, handleHelp, parseFlags } from '../core/cli.ts';
import { loadOrCreateSecret } from '../core/tokens.ts';
import {
  apiExports,
  checkListenAddress,
  closeShared,
  configOrExit,
  createLogger,
  createSink,
  onShutdown,
  openShared,
  orExit,
  requireServers,
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
requireServers(config, 'npm run api', 'the embedded stores belong to npm start');
const logger = createLogger(config.logLevel, 'tally-api');
await orExit(config, () => checkListenAddress(config));
const secret = await orExit(config, () => loadOrCreateSecret(config.dataDir, config.auth.jwtSecret));
const shared = await openShared(config, logger);
const sink = await createSink(config, shared.ch, logger);
const api = await orExit(config, () =>
  startApi(config, shared, { sink, secret: secret.value, exports: apiExports(config, shared) }),
);
process.stdout.write(`Tally API listening on ${api.url}\n`);
onShutdown(logger, async () => {
  await api.stop();
  await sink.stop();
  await closeShared(shared);
});
