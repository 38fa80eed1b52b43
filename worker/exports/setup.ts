// Starts the export workers of a process; every worker claims from the control store, so any number of them in
// any number of processes run each job once. The process's entry (bin/) hands it what it built once.
import type { ClickHouse } from '../../clickhouse/client.ts';
import type { SelfLog } from '../../clickhouse/self-log.ts';
import type { ControlStore } from '../../control/store.ts';
import type { ExportStore } from '../../core/exports/store.ts';
import type { Logger } from '../../core/logger.ts';
import { ExportWorker } from './worker.ts';

export interface ExportWorkersOptions {
  ch: ClickHouse;
  control: ControlStore;
  store: ExportStore;
  /** The process's system log (failed jobs); closed by its owner. */
  selfLog: SelfLog;
  logger: Logger;
  /** EXPORT_WORKERS. */
  workers: number;
  /** EXPORT_LEASE_SECONDS, in ms. */
  leaseMs: number;
  /** EXPORT_MAX_ATTEMPTS. */
  maxAttempts: number;
  /** EXPORT_FILE_TTL_SECONDS, in ms. */
  fileTtlMs: number;
}

export interface ExportWorkers {
  readonly workers: readonly ExportWorker[];
  /** Wakes the workers (a job was queued). */
  notify(): void;
  stop(): Promise<void>;
}

/** Starts `o.workers` workers, each with its own streaming session. */
export function startExportWorkers(o: ExportWorkersOptions): ExportWorkers {
  const workers = Array.from(
    { length: o.workers },
    () =>
      new ExportWorker({
        ch: o.ch,
        control: o.control,
        source: o.ch.exportSource(),
        store: o.store,
        selfLog: o.selfLog,
        logger: o.logger.child({ role: 'export-worker' }),
        leaseMs: o.leaseMs,
        maxAttempts: o.maxAttempts,
        fileTtlMs: o.fileTtlMs,
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
