// `npm run test:containers`: the integration suite against a ClickHouse server and a Kafka broker started by
// Testcontainers, where a Docker engine answers; elsewhere one line saying so. The wiring (which suite runs, with
// which environment, and that containers are stopped whatever happens) takes a runtime, so it is unit-tested with
// a fake one (test/integration/containers-wiring.test.ts): no Docker engine exists on this project's machines,
// and this path has not run on them.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';

export interface Started {
  stop(): Promise<void>;
}

export interface ContainerRuntime {
  /** Why containers cannot run here, or undefined when a Docker engine answers. */
  unavailable(): Promise<string | undefined>;
  startClickHouse(image: string): Promise<Started & { url: string }>;
  startKafka(image: string): Promise<Started & { brokers: string }>;
}

/** Images of the containers; the same ClickHouse line as docker-compose.yml. */
export const IMAGES = {
  clickhouse: 'clickhouse/clickhouse-server:25.8',
  kafka: 'confluentinc/cp-kafka:7.9.0',
};

/** The command run against the containers: the integration project of vitest.config.ts. */
export const SUITE = ['vitest', 'run', '--project', 'integration'];

export type SuiteRunner = (command: readonly string[], env: NodeJS.ProcessEnv) => Promise<number>;

/** Starts the containers, runs the suite with their addresses, stops them; resolves with the exit code. */
export async function runContainerSuite(
  runtime: ContainerRuntime,
  runSuite: SuiteRunner,
  env: NodeJS.ProcessEnv,
  say: (line: string) => void,
): Promise<number> {
  const why = await runtime.unavailable();
  if (why !== undefined) {
    say(`test:containers: skipped, no Docker engine (${why}); npm test runs the same suite on local engines`);
    return 0;
  }
  const started: Started[] = [];
  try {
    const ch = await runtime.startClickHouse(IMAGES.clickhouse);
    started.push(ch);
    const kafka = await runtime.startKafka(IMAGES.kafka);
    started.push(kafka);
    say(`test:containers: ClickHouse ${new URL(ch.url).host}, Kafka ${kafka.brokers}`);
    return await runSuite(SUITE, { ...env, CLICKHOUSE_URL: ch.url, KAFKA_BROKERS: kafka.brokers });
  } finally {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
  }
}

/** Asks the Docker engine at DOCKER_HOST (unix socket or tcp) or /var/run/docker.sock for `/_ping`. */
export function dockerPing(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const host = env.DOCKER_HOST;
  let target: { socketPath: string } | { host: string; port: number };
  if (host?.startsWith('tcp://')) {
    const u = new URL(host.replace(/^tcp:/, 'http:'));
    target = { host: u.hostname, port: Number(u.port || 2375) };
  } else {
    const socketPath = host?.startsWith('unix://') ? host.slice('unix://'.length) : '/var/run/docker.sock';
    if (!existsSync(socketPath)) return Promise.resolve(`${host ? 'DOCKER_HOST' : socketPath}: no socket`);
    target = { socketPath };
  }
  return new Promise((resolve) => {
    const req = request({ ...target, path: '/_ping', timeout: 3000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 ? undefined : `/_ping answered ${res.statusCode}`);
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 3 s')));
    req.on('error', (err) => resolve(`${host ?? '/var/run/docker.sock'}: ${err.message}`));
    req.end();
  });
}

interface StartedContainer {
  getHost(): string;
  getMappedPort(port: number): number;
  stop(): Promise<unknown>;
}

/**
 * Testcontainers (`@testcontainers/clickhouse`, `@testcontainers/kafka`), loaded only when a Docker engine
 * answers. They are not dependencies of the project: their Docker client pulls packages with install scripts,
 * which this project's installs do not run. With Docker: `npm i --no-save @testcontainers/clickhouse
 * @testcontainers/kafka`, then `npm run test:containers`.
 */
export function testcontainersRuntime(env: NodeJS.ProcessEnv): ContainerRuntime {
  const load = async <T>(name: string): Promise<T> => {
    try {
      return (await import(name)) as T;
    } catch {
      throw new Error(`test:containers: ${name} is not installed; run npm i --no-save ${name}`);
    }
  };
  return {
    unavailable: () => dockerPing(env),
    async startClickHouse(image) {
      const { ClickHouseContainer } = await load<{
        ClickHouseContainer: new (
          image: string,
        ) => {
          start(): Promise<StartedContainer & { getConnectionUrl(): string }>;
        };
      }>('@testcontainers/clickhouse');
      const c = await new ClickHouseContainer(image).start();
      return { url: c.getConnectionUrl(), stop: async () => void (await c.stop()) };
    },
    async startKafka(image) {
      const { KafkaContainer } = await load<{
        KafkaContainer: new (image: string) => { withKraft(): { start(): Promise<StartedContainer> } };
      }>('@testcontainers/kafka');
      const c = await new KafkaContainer(image).withKraft().start();
      return { brokers: `${c.getHost()}:${c.getMappedPort(9093)}`, stop: async () => void (await c.stop()) };
    },
  };
}

/** Runs `npx <command>` with `env`, inheriting the terminal; resolves with its exit code. */
export const npxSuite: SuiteRunner = (command, env) =>
  new Promise((resolve) => {
    const child = spawn('npx', [...command], { env, stdio: 'inherit' });
    child.on('exit', (code) => resolve(code ?? 1));
  });
