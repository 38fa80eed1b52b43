// What /clickhouse costs each identity: Prometheus counters by identity (GET /metrics), and one `info` system
// log per identity and minute with its queries, failures, rows and milliseconds. Never the SQL or its values:
// one record per query would keep changing the logs' own answers, and a query's text may hold anyone's data.
import { Counter } from 'prom-client';
import type { Severity } from '../../core/events.ts';
import { registry } from '../../core/metrics.ts';

const queries = new Counter({
  name: 'tally_sql_queries_total',
  help: '/clickhouse queries by identity and outcome (ok, refused, failed)',
  labelNames: ['identity', 'outcome'] as const,
  registers: [registry],
});
const rows = new Counter({
  name: 'tally_sql_result_rows_total',
  help: '/clickhouse rows returned (streamed formats) or read (buffered formats), by identity',
  labelNames: ['identity'] as const,
  registers: [registry],
});
const seconds = new Counter({
  name: 'tally_sql_query_seconds_total',
  help: '/clickhouse time spent in queries, by identity',
  labelNames: ['identity'] as const,
  registers: [registry],
});

export type Outcome = 'ok' | 'refused' | 'failed';

export interface UsageLog {
  record(
    severity: Severity,
    kind: string,
    message: string,
    opts?: { subject?: string; perSubject?: boolean },
  ): void;
}

interface Tally {
  queries: number;
  failed: number;
  refused: number;
  rows: number;
  ms: number;
}

export class SqlUsage {
  private minute = new Map<string, Tally>();
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    private readonly log: UsageLog | undefined,
    windowMs = 60_000,
  ) {
    this.timer = setInterval(() => this.flush(), windowMs);
    this.timer.unref();
  }

  /** One query's end: counted in the metrics at once, in the identity's minute log at the minute's end. */
  finished(identity: string, outcome: Outcome, resultRows: number, ms: number): void {
    queries.inc({ identity, outcome });
    if (resultRows > 0) rows.inc({ identity }, resultRows);
    seconds.inc({ identity }, ms / 1000);
    const t = this.minute.get(identity) ?? { queries: 0, failed: 0, refused: 0, rows: 0, ms: 0 };
    t.queries += 1;
    if (outcome === 'failed') t.failed += 1;
    if (outcome === 'refused') t.refused += 1;
    t.rows += resultRows;
    t.ms += ms;
    this.minute.set(identity, t);
  }

  /** Writes one record per identity active since the last flush. */
  flush(): void {
    const done = this.minute;
    this.minute = new Map();
    for (const [identity, t] of done) {
      this.log?.record(
        'info',
        'sql-usage',
        `/clickhouse in the last minute: ${identity}: ${t.queries} queries (${t.refused} refused, ${t.failed} failed), ${t.rows} rows, ${Math.round(t.ms)} ms`,
        { subject: identity, perSubject: true },
      );
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
