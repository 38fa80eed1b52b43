// Sends raw event lines to the service the way a producer would: to the Kafka source topics when
// KAFKA_BROKERS is set, else to POST /events of a running `npm start`. Used by `produce` and `loadgen`.
// Lines are sent as they are, unvalidated: bad ones must take the same path as any producer's bad message.
import type { Config } from '../core/config.ts';
import type { Logger } from '../core/logger.ts';
import { loadOrCreateSecret, mintToken } from '../core/tokens.ts';
import { connectAdmin, createIdempotentProducer, createKafka, ensureTopics, type Producer } from './kafka.ts';
import { publish, route } from './producer.ts';

/** Prints progress of a long run to stderr, at most every two seconds. */
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

  seconds(): string {
    return ((Date.now() - this.started) / 1000).toFixed(1);
  }
}

/** What a run did: events sent, accepted (stored or acknowledged), rejected (named by the API), requests retried. */
export interface Tally {
  sent: number;
  accepted: number;
  rejected: number;
  retried: number;
}

/** The one line a run ends with. */
export function tallyLine(t: Tally): string {
  return `sent ${t.sent}, accepted ${t.accepted}, rejected ${t.rejected}, retried ${t.retried}`;
}

export interface Publisher {
  readonly target: string;
  readonly tally: Tally;
  send(lines: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/** A failure the command reports as one line (a wrong address, a refused token), without a stack trace. */
export class PublishError extends Error {
  override readonly name = 'PublishError';
}

/** Events per HTTP request: well under the 10,000-event and 10 MB limits of POST /events. */
const HTTP_CHUNK = 5_000;
/** Longest wait a Retry-After may impose before the next try (the ingest window is a minute). */
const MAX_RETRY_AFTER_S = 60;
/** Network failures in a row before giving up (a wrong address fails on the first: nothing ever answered). */
const MAX_NETWORK_RETRIES = 5;

function tryParse(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}

export interface PublisherOptions {
  /** POST /events of this service (default: Kafka when KAFKA_BROKERS is set, else http://HOST:PORT). */
  url?: string;
  /** Waits between retries (tests); default setTimeout. */
  sleep?: (ms: number) => Promise<void>;
}

/** The origin a client tool reaches by default: the service's own listen address. */
export function defaultUrl(config: Config): string {
  return `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`;
}

function retryAfterMs(res: Response, attempt: number): number {
  const header = res.headers.get('retry-after');
  const seconds =
    header !== null && /^\d+$/.test(header.trim()) ? Number(header) : Math.min(2 ** attempt, 30);
  return Math.min(MAX_RETRY_AFTER_S, Math.max(1, seconds)) * 1000;
}

function errorText(text: string): string {
  try {
    const body = JSON.parse(text) as { message?: unknown };
    if (typeof body.message === 'string') return body.message;
  } catch {
    // not JSON: shown as it is
  }
  return text.slice(0, 200);
}

export async function createPublisher(
  config: Config,
  logger: Logger,
  opts: PublisherOptions = {},
): Promise<Publisher> {
  const topics = { sessions: config.kafka.topicSessions, logs: config.kafka.topicLogs };
  const tally: Tally = { sent: 0, accepted: 0, rejected: 0, retried: 0 };
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  if (config.kafka.brokers && opts.url === undefined) {
    const brokers = config.kafka.brokers;
    const kafka = createKafka({ brokers, clientId: 'tally-producer', logger });
    let admin: Awaited<ReturnType<typeof connectAdmin>>;
    try {
      admin = await connectAdmin(kafka, brokers);
    } catch (err) {
      throw new PublishError(`cannot reach Kafka at ${brokers.join(',')}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    try {
      await ensureTopics(admin, [topics.sessions, topics.logs]);
    } finally {
      await admin.disconnect();
    }
    const producer: Producer = createIdempotentProducer(kafka, { compression: config.kafka.compression });
    await producer.connect();
    return {
      target: `Kafka ${brokers.join(',')}`,
      tally,
      async send(lines) {
        if (lines.length === 0) return;
        tally.sent += lines.length;
        // The broker's acknowledgement is acceptance here; validation happens at ingestion (bad lines go to
        // the dead-letter topic), and the idempotent producer retries by itself.
        await publish(
          producer,
          lines.map((value) => ({ ...route(tryParse(value), topics), value })),
        );
        tally.accepted += lines.length;
      },
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
  const base = (opts.url ?? defaultUrl(config)).replace(/\/+$/, '');
  const url = base.endsWith('/events') ? base : `${base}/events`;
  try {
    new URL(url);
  } catch {
    throw new PublishError(`--url: not a URL: ${JSON.stringify(opts.url)}`);
  }
  let answered = false;

  // One request, retried on 429 / 503 after Retry-After and on network failures once the service has answered.
  async function post(body: string, count: number, firstLine: number): Promise<void> {
    for (let attempt = 1, network = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' },
          body,
        });
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        const why = cause?.code ?? cause?.message ?? (err as Error).message;
        if (!answered || ++network > MAX_NETWORK_RETRIES) {
          throw new PublishError(`cannot reach ${url}: ${why}`, { cause: err });
        }
        tally.retried += 1;
        await sleep(Math.min(2 ** network, 30) * 1000);
        continue;
      }
      answered = true;
      const text = await res.text();
      if (res.status === 429 || res.status === 503) {
        tally.retried += 1;
        await sleep(retryAfterMs(res, attempt));
        continue;
      }
      const result = (() => {
        try {
          return JSON.parse(text) as { accepted?: number; rejected?: { index: number; error: string }[] };
        } catch {
          return {};
        }
      })();
      // 202: some accepted; 400 with `rejected`: every event of the request was refused, by name.
      if (res.status === 202 || (res.status === 400 && Array.isArray(result.rejected))) {
        const rejected = result.rejected ?? [];
        for (const r of rejected) process.stderr.write(`rejected line ${firstLine + r.index}: ${r.error}\n`);
        tally.accepted += result.accepted ?? count - rejected.length;
        tally.rejected += rejected.length;
        return;
      }
      throw new PublishError(`POST ${url}: ${res.status} ${errorText(text)}`);
    }
  }

  return {
    target: url,
    tally,
    async send(lines) {
      for (let i = 0; i < lines.length; i += HTTP_CHUNK) {
        const chunk = lines.slice(i, i + HTTP_CHUNK);
        tally.sent += chunk.length;
        await post(chunk.join('\n'), chunk.length, tally.sent - chunk.length + 1);
      }
    },
    close: async () => undefined,
  };
}

/**
 * Sends lines in chunks of 5,000 with progress on stderr, then closes the publisher. Returns the closing line
 * (`sent N, accepted N, rejected N, retried N`). A PublishError ends the run: the caller prints its message.
 */
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
  process.stderr.write(
    `published to ${publisher.target} in ${progress.seconds()} s (${progress.rate()} events/s)\n`,
  );
  return tallyLine(publisher.tally);
}
