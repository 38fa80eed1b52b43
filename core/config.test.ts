import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

describe('loadConfig', () => {
  it('has the contract defaults', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8080);
    expect(c.host).toBe('127.0.0.1');
    expect(c.clickhouse).toEqual({ url: undefined, database: 'analytics', readTimeoutMs: 30_000 });
    expect(c.kafka.brokers).toBeUndefined();
    expect(c.kafka.topicSessions).toBe('analytics.sessions');
    expect(c.kafka.groupId).toBe('tally-ingest');
    expect(c.rateLimitPerMinute).toBe(100);
    expect(c.ingestRateLimitPerMinute).toBe(6000);
    expect(c.kafka.compression).toBe('zstd');
    expect(c.ingest.sessionTimeoutMs).toBe(10_000);
    expect(c.exportJobsPerDay).toBe(10);
    expect(c.retentionDays).toBe(0);
    expect(c.publicBaseUrl).toBe('http://127.0.0.1:8080');
    expect(Object.isFrozen(c.kafka)).toBe(true);
  });

  it('reports every problem at once, each naming its variable', () => {
    try {
      loadConfig({
        PORT: 'x',
        KAFKA_BROKERS: 'a:1,nope',
        AUTH_JWT_SECRET: 'short',
        RATE_LIMIT_PER_MINUTE: '0',
      });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems.join('\n');
      expect(problems).toMatch(/PORT: expected a positive integer/);
      expect(problems).toMatch(/KAFKA_BROKERS: expected comma-separated host:port, got "nope"/);
      expect(problems).toMatch(/AUTH_JWT_SECRET: must be at least 32 bytes/);
      expect(problems).toMatch(/RATE_LIMIT_PER_MINUTE/);
    }
  });

  it('sizes the read cache in bytes: 64 MiB by default, 0 turns it off, anything else named', () => {
    expect(loadConfig({}).readCacheMaxBytes).toBe(64 * 1024 * 1024);
    expect(loadConfig({ READ_CACHE_MAX_BYTES: '0' }).readCacheMaxBytes).toBe(0);
    expect(loadConfig({ READ_CACHE_MAX_BYTES: '1048576' }).readCacheMaxBytes).toBe(1_048_576);
    expect(() => loadConfig({ READ_CACHE_MAX_BYTES: '64MB' })).toThrow(/READ_CACHE_MAX_BYTES/);
  });

  it('takes every Kafka codec and refuses others, naming the variable', () => {
    for (const codec of ['gzip', 'snappy', 'lz4', 'zstd', 'none'] as const) {
      expect(loadConfig({ KAFKA_COMPRESSION: codec }).kafka.compression).toBe(codec);
    }
    expect(loadConfig({ KAFKA_COMPRESSION: 'LZ4' }).kafka.compression).toBe('lz4');
    expect(() => loadConfig({ KAFKA_COMPRESSION: 'brotli', INGEST_RATE_LIMIT_PER_MINUTE: '0' })).toThrow(
      /KAFKA_COMPRESSION: expected one of gzip, snappy, lz4, zstd, none, got "brotli"[\s\S]*INGEST_RATE_LIMIT_PER_MINUTE/,
    );
  });

  it('parses brokers and a server URL', () => {
    const c = loadConfig({ KAFKA_BROKERS: 'k1:9092, k2:9093', CLICKHOUSE_URL: 'http://default:p@ch:8123' });
    expect(c.kafka.brokers).toEqual(['k1:9092', 'k2:9093']);
    expect(c.clickhouse.url).toBe('http://default:p@ch:8123');
    expect(() => loadConfig({ CLICKHOUSE_DATABASE: 'a;drop' })).toThrow(/CLICKHOUSE_DATABASE/);
    expect(loadConfig({ CLICKHOUSE_READ_TIMEOUT_SECONDS: '5' }).clickhouse.readTimeoutMs).toBe(5000);
    expect(() => loadConfig({ CLICKHOUSE_READ_TIMEOUT_SECONDS: '1' })).toThrow(
      /CLICKHOUSE_READ_TIMEOUT_SECONDS: expected at least 2/,
    );
  });

  it('names a wrong URL without repeating a password in it', () => {
    const wrong = (v: string) => {
      try {
        loadConfig({ CLICKHOUSE_URL: v });
      } catch (err) {
        return (err as ConfigError).problems.join('\n');
      }
      return expect.unreachable();
    };
    const message = wrong('tcp://default:hunter2-secret@ch:9000');
    expect(message).toMatch(
      /CLICKHOUSE_URL: expected an http\(s\) URL, got a 36-character value with scheme "tcp"/,
    );
    expect(message).not.toContain('hunter2');
    expect(wrong('localhost:8123')).toMatch(/got "localhost:8123"/);
  });
});
