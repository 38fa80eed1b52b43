// Read-your-writes through Kafka: when is a published event queryable? The ingester commits a partition's
// offset past a batch only after the batch is stored (ingest/consumer.ts: its intent commit names the batch's
// *first* offset), so once the consumer group's committed offset passes a message's offset, that message is in
// ClickHouse. The committed offsets live in the group coordinator, so this holds across processes: an API
// replica learns what any ingester of the group has stored.
import type { Admin } from './kafka.ts';

/** Where one publish left one partition: its messages there end just before `end`, and there are `count`. */
export interface Written {
  topic: string;
  partition: number;
  /** The offset after the last message this publish wrote to the partition. */
  end: bigint;
  count: number;
}

interface Waiter {
  remaining: Written[];
  deadline: number;
  resolve: (pending: number) => void;
}

/** The messages of `w` at or past the committed offset `committed` (-1: nothing committed yet). */
export function pendingIn(w: Written, committed: bigint): number {
  const start = w.end - BigInt(w.count);
  if (committed >= w.end) return 0;
  return Number(w.end - (committed > start ? committed : start));
}

/**
 * Waits for a consumer group's committed offsets to pass what publishes wrote. One poll of the coordinator
 * serves every waiting request, so a thousand concurrent waits cost one `OffsetFetch` per interval.
 */
export class StoredWatcher {
  private readonly waiters = new Set<Waiter>();
  private polling = false;

  constructor(
    private readonly admin: Admin,
    private readonly groupId: string,
    private readonly everyMs = 50,
  ) {}

  /** Resolves with 0 once everything written is stored, or with the number of messages still pending. */
  wait(written: readonly Written[], timeoutMs: number): Promise<number> {
    const remaining = written.filter((w) => w.count > 0);
    if (remaining.length === 0) return Promise.resolve(0);
    return new Promise((resolve) => {
      this.waiters.add({ remaining, deadline: Date.now() + timeoutMs, resolve });
      if (!this.polling) void this.poll();
    });
  }

  /** Resolves every waiter with what is pending, e.g. on shutdown. */
  close(): void {
    for (const w of this.waiters) w.resolve(w.remaining.reduce((n, x) => n + x.count, 0));
    this.waiters.clear();
  }

  private async poll(): Promise<void> {
    this.polling = true;
    try {
      while (this.waiters.size > 0) {
        const topics = [...new Set([...this.waiters].flatMap((w) => w.remaining.map((x) => x.topic)))];
        // A failed fetch (coordinator moving, broker restarting) is not an answer: keep polling until the
        // waiters' deadlines, which then report their messages as pending.
        const committed = await this.admin
          .fetchOffsets({ groupId: this.groupId, topics })
          .then((r) => {
            const m = new Map<string, bigint>();
            for (const t of r)
              for (const p of t.partitions) m.set(`${t.topic}\0${p.partition}`, BigInt(p.offset));
            return m;
          })
          .catch(() => undefined);
        const now = Date.now();
        for (const w of this.waiters) {
          if (committed) {
            w.remaining = w.remaining.filter(
              (x) => pendingIn(x, committed.get(`${x.topic}\0${x.partition}`) ?? -1n) > 0,
            );
          }
          if (w.remaining.length === 0) {
            this.waiters.delete(w);
            w.resolve(0);
          } else if (now >= w.deadline) {
            this.waiters.delete(w);
            w.resolve(
              w.remaining.reduce(
                (n, x) => n + pendingIn(x, committed?.get(`${x.topic}\0${x.partition}`) ?? -1n),
                0,
              ),
            );
          }
        }
        if (this.waiters.size > 0) await new Promise((r) => setTimeout(r, this.everyMs));
      }
    } finally {
      this.polling = false;
    }
  }
}
