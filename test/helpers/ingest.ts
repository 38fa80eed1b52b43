// Shared pieces of the in-process ingestion tests: publishing generated events and a socket factory that can
// cut one Kafka client off the network without a clean leave, as a crashed or partitioned host would be.
import { connect, type Socket } from 'node:net';
import type { ISocketFactory, Producer } from '../../ingest/kafka.ts';
import { publish, route, type Topics } from '../../ingest/producer.ts';

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
