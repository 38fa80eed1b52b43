// Starts the export workers of a process from the configuration; every worker claims from the control store,
// so any number of them in any number of processes run each job once.
import type { ClickHouse } from '../../clickhouse/client.ts';
import type { SelfLog } from '../../clickhouse/self-log.ts';
import type { ControlStore } from '../../control/store.ts';
import type { Config } from '../../core/config.ts';
import { ExportStore } from '../../core/exports/store.ts';
import type { Logger } from '../../core/logger.ts';
import { ExportWorker } from './worker.ts';

export interface ExportWorkers {
  readonly workers: readonly ExportWorker[];
  /** Wakes the workers (a job was queued). */
  notify(): void;
  stop(): Promise<void>;
}

/** Starts config.exports.workers workers, each with its own streaming session. */
export function startExportWorkers(
  config: Config,
  ch: ClickHouse,
  control: ControlStore,
  logger: Logger,
  /** The process's system log (failed jobs); closed by its owner. */
  selfLog: SelfLog,
): ExportWorkers {
  const store = new ExportStore(config.exports.dir);
  const workers = Array.from(
    { length: config.exports.workers },
    () =>
      new ExportWorker({
        ch,
        control,
        source: ch.exportSource(),
        store,
        selfLog,
        logger: logger.child({ role: 'export-worker' }),
        leaseMs: config.exports.leaseSeconds * 1000,
        maxAttempts: config.exports.maxAttempts,
        fileTtlMs: config.exports.fileTtlSeconds * 1000,
      }),
  );
  for (const w of workers) w.start();
  return {
    workers,
    notify: () => {
      for (const w of workers) w.notify();
    },
    stop: async () => {
      await Promise.all(workers.map((w) => w.stop()));
    },
  };
}
