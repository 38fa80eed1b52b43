// The ingester's Prometheus metrics. Labels are topics, partitions and reason categories: never tenant data.
import { Counter, Gauge, Histogram } from 'prom-client';
import { registry } from '../core/metrics.ts';

export const ingestMetrics = {
  messages: new Counter({
    name: 'tally_ingest_messages_total',
    help: 'Messages consumed, by topic and outcome (stored or dead-lettered)',
    labelNames: ['topic', 'outcome'] as const,
    registers: [registry],
  }),
  deadLetters: new Counter({
    name: 'tally_ingest_dead_letters_total',
    help: 'Messages sent to the dead-letter topic, by source topic and reason category',
    labelNames: ['topic', 'reason'] as const,
    registers: [registry],
  }),
  batchRows: new Histogram({
    name: 'tally_ingest_batch_rows',
    help: 'Messages per inserted batch',
    buckets: [1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000],
    registers: [registry],
  }),
  batchBytes: new Histogram({
    name: 'tally_ingest_batch_bytes',
    help: 'Raw message bytes per inserted batch',
    buckets: [1e3, 1e4, 1e5, 5e5, 1e6, 4e6, 8e6, 16e6],
    registers: [registry],
  }),
  batchSeconds: new Histogram({
    name: 'tally_ingest_batch_write_seconds',
    help: 'Time to store one batch (dead letters and insert), successful attempts',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  }),
  retries: new Counter({
    name: 'tally_ingest_write_retries_total',
    help: 'Failed batch write attempts that will be retried',
    registers: [registry],
  }),
  lag: new Gauge({
    name: 'tally_ingest_consumer_lag',
    help: "Messages between the consumer group's committed offset and the end of the partition (not yet stored)",
    labelNames: ['topic', 'partition'] as const,
    registers: [registry],
  }),
  lagSeconds: new Gauge({
    name: 'tally_ingest_lag_seconds',
    help: 'While messages wait in a source topic: how old the newest message the ingester has read from it is',
    labelNames: ['topic'] as const,
    registers: [],
  }),
  up: new Gauge({
    name: 'tally_ingest_up',
    help: '1 while the ingester consumes (member of its group, fetching, keeping up); 0 otherwise',
    registers: [],
  }),
  sinceLastMessage: new Gauge({
    name: 'tally_ingest_seconds_since_last_message',
    help: 'Seconds since the ingester last read a message (since it started, if none yet)',
    registers: [],
  }),
  bufferedBytes: new Gauge({
    name: 'tally_ingest_buffered_bytes',
    help: 'Bytes of messages held in memory (buffered or being written)',
    registers: [registry],
  }),
  pausedPartitions: new Gauge({
    name: 'tally_ingest_paused_partitions',
    help: 'Partitions paused because their storage writes fail or back up',
    registers: [registry],
  }),
};

/**
 * The ingester's health gauges join /metrics only in a process that runs an ingester: `tally_ingest_up 0` from
 * an `npm start` without Kafka would page someone for an ingester that does not exist.
 */
export function registerHealthMetrics(): void {
  for (const metric of [ingestMetrics.up, ingestMetrics.sinceLastMessage, ingestMetrics.lagSeconds]) {
    if (!registry.getSingleMetric((metric as unknown as { name: string }).name))
      registry.registerMetric(metric);
  }
}

/** A bounded label for a dead-letter reason: the field at fault, or the kind of decoding failure. */
export function reasonCategory(reason: string): string {
  if (reason.startsWith('encoding')) return 'encoding';
  if (reason.startsWith('not valid JSON')) return 'not_json';
  if (reason.startsWith('message too large')) return 'too_large';
  if (reason === 'empty') return 'empty';
  if (reason.startsWith('not an object') || reason.startsWith('event must be')) return 'not_object';
  const field = /^([A-Za-z_]+)[.:]/.exec(reason)?.[1];
  return field ? `field_${field}`.slice(0, 40) : 'other';
}
