// One line naming the machine a benchmark ran on: cores, memory, Node and engine versions, and the load
// average at the start (other work on the machine makes figures noisy; the line says so).
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import type { ClickHouse } from '../clickhouse/client.ts';

export async function machine(ch: ClickHouse): Promise<string> {
  const rs = await ch.client.query({ query: 'SELECT version() AS v', format: 'JSONEachRow' });
  const [row] = await rs.json<{ v: string }>();
  const engine = `${ch.label}, ClickHouse ${row?.v}`;
  const load = loadavg()[0] ?? 0;
  const shared = load > 0.5 ? `, shared: load average ${load.toFixed(1)} at start` : '';
  const others = await otherWork();
  return (
    `${cpus().length} cores (${cpus()[0]?.model.trim()}), ${Math.round(totalmem() / 2 ** 30)} GiB, ` +
    `Node ${process.versions.node}, ${engine}${shared}${others}`
  );
}

/**
 * What else used the CPU in the second before the run (Linux: /proc), and whether a Kafka broker runs (a test
 * run or `npm run kafka:up` may have left one): ", other processes: N% of a core[, a Kafka broker running]".
 * The load average lags by a minute and counts this process too.
 */
async function otherWork(): Promise<string> {
  try {
    const busy = () => {
      const [, ...f] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/);
      const n = f.map(Number);
      // user nice system (idle iowait) irq softirq steal
      return (n[0] ?? 0) + (n[1] ?? 0) + (n[2] ?? 0) + (n[5] ?? 0) + (n[6] ?? 0) + (n[7] ?? 0);
    };
    const mine = () => {
      const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]?.split(' ') ?? [];
      return Number(f[11] ?? 0) + Number(f[12] ?? 0);
    };
    const b0 = busy();
    const m0 = mine();
    await new Promise((ok) => setTimeout(ok, 1000));
    const pct = Math.max(0, busy() - b0 - (mine() - m0));
    const broker = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .some((d) => {
        try {
          return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('kafka.Kafka');
        } catch {
          return false;
        }
      });
    // Clock ticks are 1/100 s on Linux: ticks in one second are percent of a core.
    return `, other processes: ${pct}% of a core${broker ? ', a Kafka broker running' : ''}`;
  } catch {
    return '';
  }
}
