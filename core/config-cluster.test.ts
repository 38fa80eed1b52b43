// CLICKHOUSE_CLUSTER: optional, an identifier, and only with a server.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

function problems(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('CLICKHOUSE_CLUSTER', () => {
  it('is unset by default: the single-node schema', () => {
    expect(loadConfig({}).clickhouse.cluster).toBeUndefined();
    expect(loadConfig({ CLICKHOUSE_CLUSTER: '' }).clickhouse.cluster).toBeUndefined();
  });

  it('names a cluster of the server at CLICKHOUSE_URL', () => {
    const c = loadConfig({ CLICKHOUSE_URL: 'http://ch:8123', CLICKHOUSE_CLUSTER: 'tally_prod' });
    expect(c.clickhouse).toEqual({
      url: 'http://ch:8123',
      database: 'analytics',
      cluster: 'tally_prod',
      readTimeoutMs: 30_000,
    });
  });

  it('is refused without CLICKHOUSE_URL: the embedded engine is one node', () => {
    expect(problems({ CLICKHOUSE_CLUSTER: 'tally' })).toEqual([
      'CLICKHOUSE_CLUSTER: needs CLICKHOUSE_URL (a server of the cluster); the embedded engine is a single node',
    ]);
  });

  it('takes identifier characters only, and is reported with every other problem', () => {
    const p = problems({ CLICKHOUSE_CLUSTER: "c' OR 1", PORT: 'x' });
    expect(p).toContain(`CLICKHOUSE_CLUSTER: expected letters, digits and _, got "c' OR 1"`);
    expect(p.some((m) => m.startsWith('CLICKHOUSE_CLUSTER: needs CLICKHOUSE_URL'))).toBe(true);
    expect(p.some((m) => m.startsWith('PORT:'))).toBe(true);
  });
});
