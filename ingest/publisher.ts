// Sends raw event lines to the service the way a producer would: to the Kafka source topics when
// KAFKA_BROKERS is set, else to POST /events of a running `npm start`. Used by `produce` and `loadgen`.
// Lines are sent as they are, unvalidated: bad ones must take the same path as any producer's bad message.
import type { Config } from '../core/config.ts';
import type { Logger } from '../core/logger.ts';
import { loadOrCreateSecret, mintToken } from '../core/tokens.ts';
import { connectAdmin, createIdempotentProducer, createKafka, ensureTopics, type Producer } from './kafka.ts';
import { publish, route } from './producer.ts';

/** Prints progress of a long run to stderr, at most every two seconds, and a summary at the end. */
export class Progress {
  private sent = 0;
  private readonly started = Date.now();
  private lastPrint = Date.now();

  constructor(
    private readonly total: number | undefined,
    private readonly out: NodeJS.WritableStream = process.stderr,
  ) {}

  add(n: number): void {
    this.sent += n;
    const now = Date.now();
    if (now - this.lastPrint >= 2_000) {
      this.lastPrint = now;
      const of = this.total ? `/${this.total} (${Math.floor((100 * this.sent) / this.total)}%)` : '';
      this.out.write(`  sent ${this.sent}${of}, ${this.rate()} events/s\n`);
    }
  }

  rate(): number {
    return Math.round(this.sent / Math.max(0.001, (Date.now() - this.started) / 1000));
  }

  summary(target: string): string {
    const secs = ((Date.now() - this.started) / 1000).toFixed(1);
    return `published ${this.sent} events to ${target} in ${secs} s (${this.rate()} events/s)`;
  }
}

export interface Publisher {
  readonly target: string;
  send(lines: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/** Events per HTTP request: well under the 10,000-event and 10 MB limits of POST /events. */
const HTTP_CHUNK = 5_000;

function tryParse(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}

export async function createPublisher(config: Config, logger: Logger): Promise<Publisher> {
  const topics = { sessions: config.kafka.topicSessions, logs: config.kafka.topicLogs };
  if (config.kafka.brokers) {
    const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'tally-producer', logger });
    const admin = await connectAdmin(kafka, config.kafka.brokers);
    try {
      await ensureTopics(admin, [topics.sessions, topics.logs]);
    } finally {
      await admin.disconnect();
    }
    const producer: Producer = createIdempotentProducer(kafka, { compression: config.kafka.compression });
    await producer.connect();
    return {
      target: `Kafka ${config.kafka.brokers.join(',')}`,
      send: (lines) =>
        publish(
          producer,
          lines.map((value) => ({ ...route(tryParse(value), topics), value })),
        ),
      close: () => producer.disconnect(),
    };
  }
  const secret = loadOrCreateSecret(config.dataDir, config.auth.jwtSecret);
  const token = await mintToken(secret.value, {
    sub: 'producer',
    scope: 'write:events',
    issuer: config.auth.issuer,
    audience: config.auth.audience,
  });
  const url = `${config.publicBaseUrl}/events`;
  return {
    target: url,
    async send(lines) {
      for (let i = 0; i < lines.length; i += HTTP_CHUNK) {
        const body = lines.slice(i, i + HTTP_CHUNK).join('\n');
        const res = await fetch(url, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' },
          body,
        });
        const text = await res.text();
        if (res.status !== 202) throw new Error(`POST ${url}: ${res.status} ${text}`);
        const { rejected } = JSON.parse(text) as { rejected: { index: number; error: string }[] };
        for (const r of rejected) process.stderr.write(`rejected line ${i + r.index + 1}: ${r.error}\n`);
      }
    },
    close: async () => undefined,
  };
}

/** Sends lines in chunks of 5,000 with progress, then closes the publisher; returns the summary line. */
export async function publishAll(
  publisher: Publisher,
  lines: Iterable<string> | AsyncIterable<string>,
  total?: number,
): Promise<string> {
  const progress = new Progress(total);
  let batch: string[] = [];
  try {
    for await (const line of lines) {
      batch.push(line);
      if (batch.length >= 5_000) {
        await publisher.send(batch);
        progress.add(batch.length);
        batch = [];
      }
    }
    await publisher.send(batch);
    progress.add(batch.length);
  } finally {
    await publisher.close();
  }
  return progress.summary(publisher.target);
}
