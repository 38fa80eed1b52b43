-- Cluster variant of migrations/0002. Placeholders and qualified names as in 0001.
-- log_events_local: one shard's logs, replicated; duplicate-proof by ReplacingMergeTree on a sort key that
-- ends in event_id, read with FINAL.
CREATE TABLE IF NOT EXISTS {{database}}.log_events_local ON CLUSTER {{cluster}}
(
    event_id    String,
    timestamp   DateTime64(3, 'UTC'),
    severity    Enum8('info' = 1, 'warning' = 2, 'error' = 3),
    service     LowCardinality(String),
    message     String,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toYear(timestamp)
-- Serves newest-first paging (timestamp, event_id descending) and keyset cursors on the same key.
ORDER BY (timestamp, event_id)
-- Insert-token dedup window, as in 0001.
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

-- Sharded by event_id so that a re-sent log meets its first copy on one shard: FINAL then shows it once, and
-- the page query's ORDER BY ... LIMIT merges the shards' sorted streams at the initiator.
CREATE TABLE IF NOT EXISTS {{database}}.log_events ON CLUSTER {{cluster}}
AS {{database}}.log_events_local
ENGINE = Distributed({{cluster}}, {{database}}, log_events_local, cityHash64(event_id));
