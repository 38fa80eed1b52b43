// Sends raw event lines to the service the way a producer would: to the Kafka source topics when
// KAFKA_BROKERS is set, else to POST /events of a running `npm start`. Used by `produce` and `loadgen`.
// Lines are sent as they are, unvalidated: bad ones must take the same path as any producer's bad message.
import type { Config } from '../core/config.ts';
import type { Logger } from '../core/logger.ts';
import { loadOrCreateSecret, mintToken } from '../core/tokens.ts';
import { connectAdmin, createIdempotentProducer, createKafka, ensureTopics, type Producer } from './kafka.ts';
import { PartitionMap, publish, route } from './producer.ts';
import { StoredWatcher, type Written } from './stored-wait.ts';

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
  /** With --wait: accepted events not yet queryable when the wait ended (0: all of them are). */
  pending?: number;
}

/** The one line a run ends with (with --wait, also what is still pending). */
export function tallyLine(t: Tally): string {
  const pending = t.pending === undefined ? '' : `, pending ${t.pending}`;
  return `sent ${t.sent}, accepted ${t.accepted}, rejected ${t.rejected}, retried ${t.retried}${pending}`;
}

export interface Publisher {
  readonly target: string;
  readonly tally: Tally;
  send(lines: readonly string[]): Promise<void>;
  /** Ends the run; with `waitStoredMs`, first waits (at most that long) until everything sent is queryable. */
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
  /**
   * Read-your-writes (--wait): the run ends only once every accepted event is queryable, or after this many
   * ms with `tally.pending` saying how many are not. Through Kafka: the ingesters' committed offsets; over
   * HTTP: each request with `?wait=stored`.
   */
  waitStoredMs?: number;
}

/** How long `--wait` waits at most by default: as long as POST /events' wait=stored may. */
export const WAIT_DEFAULT_MS = 120_000;

/** The wait of `--wait [--wait-ms MS]`, or undefined without --wait; throws a one-line message on a bad value. */
export function waitOption(wait: boolean | undefined, ms: string | undefined): number | undefined {
  if (ms !== undefined && !wait) throw new Error('--wait-ms needs --wait');
  if (!wait) return undefined;
  if (ms === undefined) return WAIT_DEFAULT_MS;
  const n = Number(ms);
  if (!/^\d+$/.test(ms) || n > WAIT_DEFAULT_MS)
    throw new Error(`--wait-ms must be an integer from 0 to ${WAIT_DEFAULT_MS}`);
  return n;
}

/** The origin a client tool reaches by default: the service's own listen address. */
export function defaultUrl(config: Pick<Config, 'host' | 'port'>): string {
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
  /** What it reads of the configuration: Kafka, or else the local service and its signing secret. */
  config: Pick<Config, 'kafka' | 'auth' | 'dataDir' | 'host' | 'port'>,
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
    } catch (err) {
      await admin.disconnect();
      throw err;
    }
    const producer: Producer = createIdempotentProducer(kafka, { compression: config.kafka.compression });
    await producer.connect();
    const waitMs = opts.waitStoredMs;
    // Where each message landed, to wait for the ingesters' commits past it (only with --wait).
    const partitions = waitMs === undefined ? undefined : new PartitionMap(admin);
    const written: Written[] = [];
    return {
      target: `Kafka ${brokers.join(',')}`,
      tally,
      async send(lines) {
        if (lines.length === 0) return;
        tally.sent += lines.length;
        // The broker's acknowledgement is acceptance here; validation happens at ingestion (bad lines go to
        // the dead-letter topic), and the idempotent producer retries by itself.
        written.push(
          ...(await publish(
            producer,
            lines.map((value) => ({ ...route(tryParse(value), topics), value })),
            partitions,
          )),
        );
        tally.accepted += lines.length;
      },
      async close() {
        try {
          if (waitMs !== undefined) {
            const watcher = new StoredWatcher(admin, config.kafka.groupId);
            tally.pending = await watcher.wait(written, waitMs);
          }
        } finally {
          await producer.disconnect();
          await admin.disconnect();
        }
      },
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
  const endpoint = base.endsWith('/events') ? base : `${base}/events`;
  let url: string;
  try {
    const u = new URL(endpoint);
    if (opts.waitStoredMs !== undefined) {
      u.searchParams.set('wait', 'stored');
      u.searchParams.set('wait_ms', String(opts.waitStoredMs));
      tally.pending = 0;
    }
    url = u.toString();
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
          return JSON.parse(text) as {
            accepted?: number;
            rejected?: { index: number; error: string }[];
            pending?: number;
          };
        } catch {
          return {};
        }
      })();
      // 202 (200 with wait=stored): some accepted; 400 with `rejected`: every event was refused, by name.
      if (
        res.status === 200 ||
        res.status === 202 ||
        (res.status === 400 && Array.isArray(result.rejected))
      ) {
        if (tally.pending !== undefined) tally.pending += result.pending ?? 0;
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
