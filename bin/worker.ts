// `npm run worker`: export workers alone, for a distributed deployment (needs CLICKHOUSE_URL and an export
// directory shared with the API replicas that serve the downloads).

import { startExportWorkers } from '../api/exports/setup.ts';
import { startSchedules } from '../api/schedules/setup.ts';
import { ENV_HELP, handleHelp, parseFlags } from '../core/cli.ts';
import { configOrExit, createLogger, onShutdown, openStorage, orExit } from './runtime.ts';

handleHelp(
  `usage: npm run worker\n\nThe export worker (and scheduler) alone, for a distributed deployment: needs CLICKHOUSE_URL.\n\n${ENV_HELP}`,
);
parseFlags('npm run worker', {});
const config = configOrExit();
if (!config.clickhouse.url) {
  process.stderr.write(
    'tally: npm run worker needs CLICKHOUSE_URL (the embedded engine belongs to npm start, which runs a worker)\n',
  );
  process.exit(2);
}
const logger = createLogger(config.logLevel, 'tally-worker');
const ch = await orExit(config, () => openStorage(config, logger));
const workers = startExportWorkers(config, ch, logger);
// schedules: every worker process also schedules; job ids per period keep several of them exact (docs/data-engineers.md).
const schedules = startSchedules(config, ch, logger, workers.workers, workers.notify);
process.stdout.write(`Tally export worker(s): ${workers.workers.length}, files in ${config.exports.dir}\n`);
onShutdown(logger, async () => {
  await schedules.stop();
  await workers.stop();
  await ch.close();
});
