// Since when each day's counters have had their current value, as this process saw them: the sealer seals a
// day (usage or logs) only once it has settled, since a day still taking events (today, under live traffic)
// would be sealed again on every round for a seal the next insert retires.
import type { DayPrefix, Family } from './queries/usage-pairs.ts';

export class QuietDays {
  private readonly seen = new Map<string, { value: number; since: number }>();

  /** Whether `key` has had `value` for at least `quietMs` (a new or changed value starts its clock at `now`). */
  quiet(key: string, value: number, quietMs: number, now: number): boolean {
    const was = this.seen.get(key);
    if (was && was.value === value) return now - was.since >= quietMs;
    this.seen.set(key, { value, since: now });
    return quietMs <= 0;
  }

  /** A family's usage days whose prefix has settled. */
  settled(family: Family, days: readonly DayPrefix[], quietMs: number, now: number): DayPrefix[] {
    return days.filter((d) => this.quiet(`${family}|${d.day}`, d.prefix, quietMs, now));
  }
}
