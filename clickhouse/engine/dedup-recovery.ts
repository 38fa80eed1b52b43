// Crash recovery of the embedded engine's insert-deduplication logs, run before the engine loads its tables.
//
// Why: a non-replicated MergeTree with non_replicated_deduplication_window records an inserted block's id in
// its deduplication log (deduplication_logs/deduplication_log_N.txt, one `1\t<part>\t<block id>` line, written
// at once) and only then renames the block's temporary part (tmp_insert_<part>) into place. A process killed
// between the two leaves the record without its part: on restart the engine deletes the temporary part but
// still holds the record, so the ingester's retry of that batch, with the same insert_deduplication_token, is
// dropped as a duplicate in that table, while the other tables of the insert took it. A block lost in
// usage_first_seen makes total_users short by the users seen only in that batch, everything else exact: the
// signature of the crash soak's one failure in CI (test/faults/crash.test.ts); in usage_events it would be the
// batch's events. Seen with strace: the record's write(2) and the part's rename(2) are consecutive syscalls of
// the inserting thread, and a SIGKILL injected at that rename reproduces the loss in every table the ingester's
// insert writes (test/faults/dedup-kill.test.ts). Upstream rolls such a record back when an insert fails in the
// process (ClickHouse PR #118089); after a kill nothing runs to do it, and the engine does not check its log
// against its parts as it loads.
//
// The fix is the engine's own undo: a `2\t<part>\t<block id>` (DROP) record, which the engine writes itself when
// an insert's part is rolled back, and which makes it forget the block id as it loads the log. It is appended
// only for records whose part does not exist but whose temporary part still does: exactly the state a kill
// between the two steps leaves, and one that no finished insert, merge or drop leaves. Nothing else is touched.
//
// Only before this process starts the engine on the directory: the engine reads the logs once, as it loads,
// and while it runs a temporary part beside its record is an insert about to commit. One process owns a data
// directory (DESIGN.md), so no other engine reads these files meanwhile.
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';

export interface RecoveredRecord {
  /** `database.table`, from the engine's metadata; the data directory when it is not found there. */
  table: string;
  /** The table's data directory (store/<xyz>/<uuid>). */
  dir: string;
  part: string;
  blockId: string;
}

const LOG_DIR = 'deduplication_logs';
const LOG_FILE = /^deduplication_log_(\d+)\.txt$/;
const TMP_INSERT = 'tmp_insert_';

/**
 * Appends a DROP record for every deduplication record of `enginePath`'s tables whose part a crash left
 * uncommitted (see above); returns them. `enginePath` is the engine's data directory (DATA_DIR/clickhouse).
 */
export function recoverDedupLogs(enginePath: string): RecoveredRecord[] {
  const store = join(enginePath, 'store');
  if (!existsSync(store)) return [];
  const out: RecoveredRecord[] = [];
  for (const prefix of readdirSync(store, { withFileTypes: true })) {
    if (!prefix.isDirectory()) continue;
    const prefixDir = join(store, prefix.name);
    for (const uuid of readdirSync(prefixDir, { withFileTypes: true })) {
      const dir = join(prefixDir, uuid.name);
      if (!uuid.isDirectory() || !existsSync(join(dir, LOG_DIR))) continue;
      for (const r of recoverTable(dir)) out.push({ table: dir, dir, ...r });
    }
  }
  if (out.length > 0) {
    const names = tableNames(enginePath);
    for (const r of out) r.table = names.get(basename(r.dir)) ?? r.dir;
  }
  return out;
}

/** Table UUID -> `database.table`, from the engine's metadata files (`ATTACH TABLE _ UUID '<uuid>'`). */
function tableNames(enginePath: string): Map<string, string> {
  const names = new Map<string, string>();
  const metadata = join(enginePath, 'metadata');
  if (!existsSync(metadata)) return names;
  for (const db of readdirSync(metadata, { withFileTypes: true })) {
    if (!db.isDirectory()) continue;
    for (const f of readdirSync(join(metadata, db.name))) {
      if (!f.endsWith('.sql')) continue;
      const uuid = /UUID '([0-9a-f-]{36})'/.exec(readFileSync(join(metadata, db.name, f), 'utf8'))?.[1];
      if (uuid) names.set(uuid, `${db.name}.${f.slice(0, -'.sql'.length)}`);
    }
  }
  return names;
}

function recoverTable(table: string): { part: string; blockId: string }[] {
  // Temporary parts never committed: the only parts a record could be left without. Most starts have none, and
  // then no log is read (a log holds up to twice the window's records, megabytes on every table).
  const entries = new Set(readdirSync(table));
  const uncommitted = new Set<string>();
  for (const e of entries) {
    if (!e.startsWith(TMP_INSERT)) continue;
    const part = e.slice(TMP_INSERT.length);
    if (!entries.has(part)) uncommitted.add(part);
  }
  if (uncommitted.size === 0) return [];
  const logs = readdirSync(join(table, LOG_DIR))
    .flatMap((f) => {
      const m = LOG_FILE.exec(f);
      return m ? [{ path: join(table, LOG_DIR, f), n: Number(m[1]) }] : [];
    })
    .sort((a, b) => a.n - b.n);
  const last = logs.at(-1);
  if (!last) return [];
  // Block id -> part, for the records in force, in the order the engine loads them.
  const inForce = new Map<string, string>();
  let lastText = '';
  for (const log of logs) {
    lastText = readFileSync(log.path, 'utf8');
    for (const line of lastText.split('\n')) {
      const [op, part, blockId] = line.split('\t');
      if (part === undefined || blockId === undefined) continue;
      if (op === '1') inForce.set(blockId, part);
      else if (op === '2') inForce.delete(blockId);
    }
  }
  // A record cut short would make the engine stop reading the file there; nothing is appended behind it.
  if (lastText.length > 0 && !lastText.endsWith('\n')) return [];
  const orphans: { part: string; blockId: string }[] = [];
  for (const [blockId, part] of inForce) {
    if (uncommitted.has(part)) orphans.push({ part, blockId });
  }
  if (orphans.length === 0) return [];
  const fd = openSync(last.path, 'a');
  try {
    writeSync(fd, orphans.map((o) => `2\t${o.part}\t${o.blockId}\n`).join(''));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return orphans;
}
