// One line naming the machine a benchmark ran on: cores, memory, Node and engine versions, and the load
// average at the start (other work on the machine makes figures noisy; the line says so).
import { cpus, loadavg, totalmem } from 'node:os';
import type { ClickHouse } from '../clickhouse/client.ts';

export async function machine(ch: ClickHouse): Promise<string> {
  const rs = await ch.client.query({ query: 'SELECT version() AS v', format: 'JSONEachRow' });
  const [row] = await rs.json<{ v: string }>();
  const engine = `${ch.label}, ClickHouse ${row?.v}`;
  const load = loadavg()[0] ?? 0;
  const shared = load > 0.5 ? `, shared: load average ${load.toFixed(1)} at start` : '';
  return (
    `${cpus().length} cores (${cpus()[0]?.model.trim()}), ${Math.round(totalmem() / 2 ** 30)} GiB, ` +
    `Node ${process.versions.node}, ${engine}${shared}`
  );
}
