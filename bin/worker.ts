// `npm run worker`: the worker lane alone (export workers, scheduler, webhook dispatcher), for a distributed
// deployment (needs CLICKHOUSE_URL, DATABASE_URL and an export directory shared with the API replicas that serve
// the downloads).

import { ENV_HELP, handleHelp, parseFlags } from '../core/cli.ts';
import {
  closeShared,
  configOrExit,
  createLogger,
  onShutdown,
  openShared,
  requireServers,
  runExportWorkers,
  runSchedules,
} from './runtime.ts';

handleHelp(
  `usage: npm run worker\n\nThe export worker (and scheduler) alone, for a distributed deployment: needs CLICKHOUSE_URL\nand DATABASE_URL.\n\n${ENV_HELP}`,
);
parseFlags('npm run worker', {});
const config = configOrExit();
requireServers(config, 'npm run worker', 'the embedded stores belong to npm start, which runs a worker');
const logger = createLogger(config.logLevel, 'tally-worker');
const shared = await openShared(config, logger);
const workers = runExportWorkers(config, shared);
// schedules: every worker process also schedules; the (schedule, period) key keeps several of them exact.
const schedules = runSchedules(config, shared, workers);
process.stdout.write(`Tally export worker(s): ${workers.workers.length}, files in ${config.exports.dir}\n`);
onShutdown(logger, async () => {
  await schedules.stop();
  await workers.stop();
  await closeShared(shared);
});
