// Provisions Kafka for the integration tests: KAFKA_BROKERS if set, else a broker already on 127.0.0.1:9092,
// else the project's own single-node broker (`npm run kafka:up`). testcontainers needs a Docker engine, which
// this project's CI machines do not have, so the local broker is the fallback everywhere.
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import type { TestProject } from 'vitest/node';

function answers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: 1000 });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

export default async function setup(project: TestProject): Promise<void> {
  let brokers = process.env.KAFKA_BROKERS;
  if (!brokers) {
    if (!(await answers('127.0.0.1', 9092))) {
      execFileSync('bash', ['scripts/kafka.sh', 'up'], { stdio: 'inherit' });
    }
    brokers = '127.0.0.1:9092';
  }
  project.provide('kafkaBrokers', brokers);
}

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
  }
}
