// What a reader that keeps rows in memory has already read of a table, told from its active parts (one node
// only: on a cluster parts are per shard). Shared by the open days' units (usage-open-units.ts) and the held log
// days (log-live-days.ts), which list a table's parts, then read only the rows of parts they have not read.

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
