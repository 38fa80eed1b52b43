// Keeps the read path's seals fresh: every few seconds, seals the log days and usage days whose counters have
// settled (log-day-counts.ts, usage-pairs.ts), after back-filling the usage points once, and covers the points
// of each family's last day while it is still open (usage-open-day.ts). Any number of processes may run it at
// once (every seal is right on its own, and a pair written twice is folded by the reads), so every process that
// serves reads runs one; a round that fails is logged and retried on the next tick.
import type { Logger } from '../core/logger.ts';
import type { ClickHouse } from './client.ts';
import { sealLogDays } from './queries/log-day-counts.ts';
import { coverOpenDays, type OpenWindow, openWindowsOf, pruneOpenPoints } from './queries/usage-open-day.ts';
import {
  backfillPoints,
  dayPrefixes,
  type Family,
  pruneReplacedPairs,
  sealsWritten,
  sealUsageDays,
  unsealedDays,
} from './queries/usage-pairs.ts';
import { QuietDays } from './quiet-days.ts';

export interface SealerOptions {
  /** Milliseconds between rounds (default 5,000). */
  everyMs?: number;
  /** Milliseconds between prunings of replaced usage pairs (default 600,000). */
  pruneEveryMs?: number;
  /**
   * How long a usage day's prefix, or a log day's counters, must stay unchanged before the day is sealed
   * (default 30,000 ms). Sealing walks the history of every entity seen on the day, or counts the day's logs in
   * log_events FINAL, so a day still taking events (today, under live traffic) is read without its seal rather than sealed
   * again on every round.
   */
  quietMs?: number;
  now?: () => number;
}

export interface Sealer {
  /** One round now (tests, benchmarks); resolves when it is done. */
  runOnce(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * One usage round: back-fill if not yet done, seal every settled unsealed day, then cover the points of each
 * family's last day if it is still open (usage-open-day.ts). Returns days sealed.
 */
export async function sealUsage(
  ch: ClickHouse,
  quiet: QuietDays,
  quietMs: number,
  now: number,
): Promise<number> {
  await backfillPoints(ch, new Date(now).toISOString().slice(0, 10));
  // The prefixes are read before the pairs are computed: pairs that see a later insert are filed under a
  // prefix that insert has already moved on from, so they never count. Likewise the open days' bases.
  const prefixes = await dayPrefixes(ch);
  const unsealed = unsealedDays(prefixes, await sealsWritten(ch));
  const open = new Map<Family, Set<string>>();
  let sealed = 0;
  for (const [family, days] of unsealed) {
    const ready = quiet.settled(family, days, quietMs, now);
    await sealUsageDays(ch, family, ready);
    sealed += ready.length;
    const done = new Set(ready.map((d) => d.day));
    open.set(family, new Set(days.filter((d) => !done.has(d.day)).map((d) => d.day)));
  }
  await coverOpenDays(ch, prefixes, (family, d) => !open.get(family)?.has(d.day));
  return sealed;
}

/** The open windows now: each family's last days from the first one not sealed under its current prefix. */
async function currentOpenWindows(ch: ClickHouse): Promise<OpenWindow[]> {
  const prefixes = await dayPrefixes(ch);
  const unsealed = unsealedDays(prefixes, await sealsWritten(ch));
  return openWindowsOf(prefixes, (family, d) => !unsealed.get(family)?.some((u) => u.day === d.day));
}

export function startSealer(ch: ClickHouse, logger: Logger, opts: SealerOptions = {}): Sealer {
  const everyMs = opts.everyMs ?? 5_000;
  const quietMs = opts.quietMs ?? 30_000;
  const now = opts.now ?? Date.now;
  const quiet = new QuietDays();
  const pruneEveryMs = opts.pruneEveryMs ?? 600_000;
  let prunedAt = now();
  // Open-day rows already left behind at the previous pruning (pruneOpenPoints).
  let staleOpen = new Set<string>();
  let running: Promise<void> | undefined;
  let stopped = false;
  const round = (): Promise<void> => {
    // One round at a time per process: a slow round is not stacked on by the next tick.
    running ??= (async () => {
      const logDays = await sealLogDays(ch, { days: quiet, quietMs, now: now() });
      const usageDays = await sealUsage(ch, quiet, quietMs, now());
      if (logDays + usageDays > 0) logger.debug({ logDays, usageDays }, 'sealer: sealed');
      if (now() - prunedAt >= pruneEveryMs) {
        prunedAt = now();
        const pruned = await pruneReplacedPairs(ch);
        if (pruned > 0) logger.debug({ pruned }, 'sealer: replaced usage pairs removed');
        const left = await pruneOpenPoints(ch, await currentOpenWindows(ch), staleOpen);
        staleOpen = left.stale;
        if (left.removed > 0)
          logger.debug({ removed: left.removed }, 'sealer: open-day rows left behind removed');
      }
    })()
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

export { QuietDays };
