// The wiring of `npm run test:containers` with a fake container runtime (no Docker engine here): without an
// engine, one line and success; with one, the integration project runs with CLICKHOUSE_URL and KAFKA_BROKERS of
// the started containers, and the containers are stopped even when the suite or a start fails.
import { describe, expect, it } from 'vitest';
import {
  type ContainerRuntime,
  dockerPing,
  IMAGES,
  runContainerSuite,
  SUITE,
} from '../helpers/containers.ts';

function fake(opts: { unavailable?: string; kafkaFails?: boolean } = {}) {
  const events: string[] = [];
  const runtime: ContainerRuntime = {
    unavailable: async () => opts.unavailable,
    async startClickHouse(image) {
      events.push(`start ${image}`);
      return {
        url: 'http://test:test@127.0.0.1:32768/test',
        stop: async () => void events.push('stop clickhouse'),
      };
    },
    async startKafka(image) {
      events.push(`start ${image}`);
      if (opts.kafkaFails) throw new Error('image pull failed');
      return { brokers: '127.0.0.1:32769', stop: async () => void events.push('stop kafka') };
    },
  };
  return { runtime, events };
}

describe('npm run test:containers wiring', () => {
  it('says in one line that there is no engine, runs nothing and succeeds', async () => {
    const { runtime, events } = fake({ unavailable: '/var/run/docker.sock: no socket' });
    const lines: string[] = [];
    let ran = false;
    const code = await runContainerSuite(
      runtime,
      async () => {
        ran = true;
        return 0;
      },
      {},
      (l) => lines.push(l),
    );
    expect(code).toBe(0);
    expect(ran).toBe(false);
    expect(events).toEqual([]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^test:containers: skipped, no Docker engine \(.*no socket\)/);
  });

  it('runs the integration project against the containers, passes its exit code, stops both', async () => {
    const { runtime, events } = fake();
    const seen: Array<{ command: readonly string[]; env: NodeJS.ProcessEnv }> = [];
    const code = await runContainerSuite(
      runtime,
      async (command, env) => {
        seen.push({ command, env });
        return 3;
      },
      { KEEP: 'me', KAFKA_BROKERS: 'ignored:1' },
      () => undefined,
    );
    expect(code).toBe(3);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.command).toEqual(SUITE);
    expect(SUITE).toEqual(['vitest', 'run', '--project', 'integration']);
    expect(seen[0]?.env).toMatchObject({
      KEEP: 'me',
      CLICKHOUSE_URL: 'http://test:test@127.0.0.1:32768/test',
      KAFKA_BROKERS: '127.0.0.1:32769',
    });
    expect(events).toEqual([
      `start ${IMAGES.clickhouse}`,
      `start ${IMAGES.kafka}`,
      'stop kafka',
      'stop clickhouse',
    ]);
  });

  it('stops what started when a later start fails', async () => {
    const { runtime, events } = fake({ kafkaFails: true });
    await expect(
      runContainerSuite(
        runtime,
        async () => 0,
        {},
        () => undefined,
      ),
    ).rejects.toThrow('image pull');
    expect(events).toEqual([`start ${IMAGES.clickhouse}`, `start ${IMAGES.kafka}`, 'stop clickhouse']);
  });

  it('finds no engine on this machine through a socket that is not there', async () => {
    expect(await dockerPing({ DOCKER_HOST: 'unix:///nonexistent/docker.sock' })).toMatch(/no socket/);
  });
});
