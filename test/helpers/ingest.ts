// Shared pieces of the in-process ingestion tests: publishing generated events and a socket factory that can
// cut one Kafka client off the network without a clean leave, as a crashed or partitioned host would be.
import { connect, type Socket } from 'node:net';
import { insertEvents } from '../../clickhouse/inserts.ts';
import { createLogger } from '../../core/logger.ts';
import type { BatchLimits } from '../../ingest/batcher.ts';
import { type BatchWriter, type FaultReporter, Ingester } from '../../ingest/consumer.ts';
import type { Admin, ISocketFactory, Kafka, Producer } from '../../ingest/kafka.ts';
import { publish, route, type Topics } from '../../ingest/producer.ts';
import type { TestEngine } from './engine.ts';

export async function publishEvents(
  producer: Producer,
  topics: Topics,
  events: readonly object[],
): Promise<void> {
  const lines = events.map((e) => JSON.stringify(e));
  for (let i = 0; i < lines.length; i += 5_000) {
    await publish(
      producer,
      lines.slice(i, i + 5_000).map((value) => ({ ...route(JSON.parse(value), topics), value })),
    );
  }
}

export function killableSockets(): { factory: ISocketFactory; cut: () => void } {
  const sockets = new Set<Socket>();
  let dead = false;
  const factory: ISocketFactory = ({ host, port, onConnect }) => {
    const socket = connect({ host, port }, onConnect);
    if (dead) setImmediate(() => socket.destroy(new Error('cut off by the test')));
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    return socket;
  };
  return {
    factory,
    cut() {
      dead = true;
      for (const s of sockets) s.destroy(new Error('cut off by the test'));
    },
  };
}

export interface TestIngesterOptions {
  kafka: Kafka;
  engine: TestEngine;
  topics: Topics;
  groupId: string;
  limits?: Partial<BatchLimits>;
  /** Instead of inserting into the engine (to inject storage failures). */
  write?: BatchWriter;
  reportFault?: FaultReporter;
}

/** An in-process ingester on the test engine with short sessions, so a lost member costs seconds. */
export function testIngester(o: TestIngesterOptions): Ingester {
  return new Ingester({
    kafka: o.kafka,
    write: o.write ?? ((rows, token) => insertEvents(o.engine.ch, rows, token)),
    ...(o.reportFault ? { reportFault: o.reportFault } : {}),
    topics: [o.topics.sessions, o.topics.logs],
    groupId: o.groupId,
    limits: { rows: 500, bytes: 1024 * 1024, waitMs: 200, ...o.limits },
    logger: createLogger('silent'),
    sessionTimeoutMs: 6_000,
  });
}

/** Deletes a test's source topics and their dead-letter topics. */
export async function dropTopics(admin: Admin, topics: Topics): Promise<void> {
  await admin
    .deleteTopics({ topics: Object.values(topics).flatMap((t) => [t, `${t}.dlq`]) })
    .catch(() => undefined);
}
