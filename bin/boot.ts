// The first steps of every entry point, in a module of their own that loads little: configuration, the
// listen-address check, and opening the storage. `npm start` begins opening the storage with these and loads
// the API, the ingester and the workers meanwhile (module loading was most of a restart's time to /readyz).
import { createServer } from 'node:net';
import { type ClickHouse, openClickHouse } from '../clickhouse/client.ts';
import { migrate, migrationsFor, RETIRE_MIGRATION } from '../clickhouse/migrate.ts';
import { applyRetention } from '../clickhouse/retention.ts';
import { type Config, ConfigError, loadConfig } from '../core/config.ts';
import type { Logger } from '../core/logger.ts';
import {
  claimDataDir,
  dataDirFailure,
  listenFailure,
  StartupError,
  storageFailure,
} from '../core/startup.ts';

/** Loads the configuration or exits with every problem listed. */
export function configOrExit(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tally: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/**
 * Runs one start-up step; a failure the operator can fix (core/startup.ts) ends the process with one line on
 * stderr naming the variable, exit code 1. Anything else is a bug and keeps its stack.
 */
export async function orExit<T>(config: Config, step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    const known = err instanceof StartupError ? err : dataDirFailure(err, config.dataDir);
    if (!known) throw err;
    process.stderr.write(`tally: ${known.message}\n`);
    process.exit(1);
  }
}

/**
 * Fails at once, before storage is opened and migrated (seconds on the embedded engine), when the listen
 * address is taken or not ours. The listen itself still reports the same way if the port is taken meanwhile.
 */
export function checkListenAddress(config: Config): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err) => reject(listenFailure(err, config.host, config.port) ?? err));
    probe.listen({ port: config.port, host: config.host, exclusive: true }, () =>
      probe.close(() => resolve()),
    );
  });
}

/**
 * Opens ClickHouse and brings its schema up to date, except migration 0012, which retires the control-plane
 * tables of earlier versions: that one runs in retireLegacyTables, after their import into the control store.
 */
export async function openStorage(config: Config, logger: Logger): Promise<ClickHouse> {
  // The embedded engine takes one process per data directory: a second one is told so in one line.
  if (!config.clickhouse.url) claimDataDir(config.dataDir);
  let ch: ClickHouse;
  try {
    ch = await openClickHouse({
      url: config.clickhouse.url,
      database: config.clickhouse.database,
      dataDir: config.dataDir,
      cluster: config.clickhouse.cluster,
      readTimeoutMs: config.clickhouse.readTimeoutMs,
      onDedupRecovery: (records) =>
        logger.warn(
          { records: records.map((r) => ({ table: r.table, part: r.part, dir: r.dir })) },
          'clickhouse: undid insert-deduplication records a crash left without their part; the retried batches will be stored',
        ),
    });
  } catch (err) {
    throw storageFailure(err, config.clickhouse.url) ?? err;
  }
  const applied = await migrate(
    ch,
    migrationsFor(ch).filter((m) => m.version !== RETIRE_MIGRATION),
  ).catch((err: unknown) => {
    throw storageFailure(err, config.clickhouse.url) ?? err;
  });
  if (applied.length > 0) logger.info({ applied }, 'clickhouse: migrations applied');
  await applyRetention(ch, config.retentionDays);
  return ch;
}
