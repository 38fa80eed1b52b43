// Keeps the read path's seals fresh: every few seconds, seals the log cells changed since their last seal
// (log-day-counts.ts). Any number of processes may run it at once (each seal is right on its own), so every
// process that serves reads runs one; a round that fails is logged and retried on the next tick.
import type { Logger } from '../core/logger.ts';
import type { ClickHouse } from './client.ts';
import { sealLogDays } from './queries/log-day-counts.ts';

export interface Sealer {
  /** One round now (tests, and the first round at start); resolves when it is done. */
  runOnce(): Promise<void>;
  stop(): Promise<void>;
}

export function startSealer(ch: ClickHouse, logger: Logger, everyMs = 5_000): Sealer {
  let running: Promise<void> | undefined;
  let stopped = false;
  const round = (): Promise<void> => {
    // One round at a time per process: a slow round is not stacked on by the next tick.
    running ??= sealLogDays(ch)
      .then((sealed) => {
        if (sealed > 0) logger.debug({ sealed }, 'sealer: log cells sealed');
      })
      .catch((err: unknown) => {
        if (!stopped) logger.warn({ err }, 'sealer: round failed; retrying on the next tick');
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  const timer = setInterval(() => void round(), everyMs);
  timer.unref();
  return {
    runOnce: round,
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
