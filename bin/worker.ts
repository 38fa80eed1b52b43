// `npm run worker`: the worker lane alone (export workers, scheduler, webhook dispatcher), for a distributed
// deployment (needs CLICKHOUSE_URL, DATABASE_URL and an export directory shared with the API replicas that serve
// the downloads).

import { SelfLog } from '../clickhouse/self-log.ts';
import { ENV_HELP, handleHelp, parseFlags } from '../core/cli.ts';
import {
  configOrExit,
  createLogger,
  exportParts,
  onShutdown,
  openControlStore,
  openStorage,
  orExit,
  retireLegacyTables,
  runExportWorkers,
  runSchedules,
} from './runtime.ts';

handleHelp(
  `usage: npm run worker\n\nThe export worker (and scheduler) alone, for a distributed deployment: needs CLICKHOUSE_URL\nand DATABASE_URL.\n\n${ENV_HELP}`,
);
parseFlags('npm run worker', {});
const config = configOrExit();
if (!config.clickhouse.url || !config.control.databaseUrl) {
  process.stderr.write(
    `tally: npm run worker needs ${!config.clickhouse.url ? 'CLICKHOUSE_URL' : 'DATABASE_URL'} (the embedded stores belong to npm start, which runs a worker)\n`,
  );
  process.exit(2);
}
const logger = createLogger(config.logLevel, 'tally-worker');
const control = await orExit(config, () => openControlStore(config, logger));
const ch = await orExit(config, () => openStorage(config, logger));
await orExit(config, () => retireLegacyTables(config, ch, control, logger));
const selfLog = new SelfLog(ch);
const shared = { ch, control, logger, selfLog, parts: exportParts(config) };
const workers = runExportWorkers(config, shared);
// schedules: every worker process also schedules; the (schedule, period) key keeps several of them exact.
const schedules = runSchedules(config, shared, workers);
process.stdout.write(`Tally export worker(s): ${workers.workers.length}, files in ${config.exports.dir}\n`);
onShutdown(logger, async () => {
  await schedules.stop();
  await workers.stop();
  await selfLog.close();
  await ch.close();
  await control.close();
});
