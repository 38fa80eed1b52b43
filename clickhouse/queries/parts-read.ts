// What a reader that keeps rows in memory has already read of a table, told from its active parts (one node
// only: on a cluster parts are per shard). Shared by the open days' units (usage-open-units.ts) and the held log
// days (log-live-days.ts), which list a table's parts, then read only the rows of parts they have not read; and
// by the counters' sums kept by parts (log day sums, usage day prefixes), which sum only the parts not read.
import { keptRows, type PartListing, type PartName, partsAt } from '../data-version.ts';

/** An active part as system.parts lists it: its name and the highest block number it holds. */
export interface PartBlocks {
  name: string;
  max: number;
}

/**
 * The parts listed now whose rows were all read by a reader that read every part listed `before` (after
 * listing them). A single node numbers blocks from one counter per table, taken as each insert commits:
 * every block numbered at most the highest listed before was committed before that listing, so a part within
 * it (one listed then, or a merge of such) holds only rows read already. Rows inserted later are in none of
 * these parts, and stay in none: a part they reach by a merge after this listing has a new name.
 * (MergeTreeData::renameTempPartAndReplace takes the number and adds the part to the set atomically,
 * "otherwise a merge could happen in an interval that doesn't yet contain the new part".) Without this, a merge
 * of today's parts made the next read take the merged part whole: its day again, 38-60 ms at 100M events.
 */
export function partsRead(before: readonly PartBlocks[], now: readonly PartBlocks[]): string[] {
  const seenMax = Math.max(-1, ...before.map((p) => p.max));
  return now.filter((p) => p.max <= seenMax).map((p) => p.name);
}

/** A part name's mutation version (`partition_min_max_level[_mutation]`), 0 when none was applied. */
export function mutationOf(part: string): number {
  const bits = part.split('_');
  return bits.length >= 5 ? Number(bits[bits.length - 1]) : 0;
}

/**
 * Part names as the elements of a list ('' for none, which no part is named): part names are [0-9a-z_] ('-'
 * in patch parts), nothing in them to escape.
 */
export function partList(names: readonly string[]): string {
  return names.map((n) => `'${n}'`).join(',') || "''";
}

/**
 * Sums of a table's counters (SimpleAggregateFunction(sum) columns) kept by the parts of a data version's listing
 * of it (one node), so that a reader after an insert sums the insert's parts alone instead of every counter.
 * Counters are sums, so a listing that keeps every row of the last one (its parts or merges of them: no DELETE,
 * drop or TTL; data-version.ts keptRows) adds only its parts of blocks past the highest read (partsRead: a part
 * within it holds rows read already, one wholly past it none). A part of both (an insert merged with older
 * parts) makes every part's sums read again. The reader reads the plan's parts by `_part` and hands the sums
 * back by part (keepSums), which tells a part merged away before the read by its missing rows (every part holds
 * rows).
 */
interface KeptSums {
  listing: PartListing;
  seenMax: number;
  sums: ReadonlyMap<string, number>;
}

const keptSums = new WeakMap<object, Map<string, KeptSums>>();

/** What a reader of `table`'s sums at `version` reads: every part of the listing, or its new ones. */
export interface SumsPlan {
  table: string;
  listing: PartListing;
  /** The parts to sum, by name (none: the kept sums are the version's). */
  read: string[];
  base: KeptSums | undefined;
}

/** The plan of `table`'s sums at `version` on `ch` (a handle: each keeps its own), or undefined: no listing. */
export function sumsPlan(ch: object, version: string, table: string): SumsPlan | undefined {
  const listing = partsAt(version, table);
  if (!listing) return undefined;
  const listed = [...listing.values()];
  if (listed.some((p) => p === undefined)) return undefined;
  const all = listed as PartName[];
  const was = keptSums.get(ch)?.get(table);
  if (was && keptRows(was.listing, listing)) {
    const fresh = all.filter((p) => p.max > was.seenMax);
    if (fresh.every((p) => p.min > was.seenMax))
      return { table, listing, read: fresh.map((p) => p.name), base: was };
  }
  return { table, listing, read: all.map((p) => p.name), base: undefined };
}

/**
 * The sums at the plan's listing, from the sums read of its parts (part, key, sum), kept for the next plan; or
 * undefined when a part the plan read gave no row (merged away since the listing): the caller sums the table.
 */
export function keepSums(
  ch: object,
  plan: SumsPlan,
  read: Iterable<readonly [part: string, key: string, sum: number]>,
): ReadonlyMap<string, number> | undefined {
  const byTable = keptSums.get(ch) ?? new Map<string, KeptSums>();
  keptSums.set(ch, byTable);
  const sums = new Map(plan.base?.sums);
  const seen = new Set<string>();
  for (const [part, key, sum] of read) {
    seen.add(part);
    sums.set(key, (sums.get(key) ?? 0) + sum);
  }
  if (plan.read.some((name) => !seen.has(name))) {
    byTable.delete(plan.table);
    return undefined;
  }
  let seenMax = -1;
  for (const p of plan.listing.values()) if (p && p.max > seenMax) seenMax = p.max;
  byTable.set(plan.table, { listing: plan.listing, seenMax, sums });
  return sums;
}
