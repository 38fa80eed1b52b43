-- Raw system logs, served row by row: duplicate-proof by ReplacingMergeTree on a sort key that ends in
-- event_id, read with FINAL so a re-sent log is never shown or counted twice.
CREATE TABLE IF NOT EXISTS log_events
(
    event_id    String,
    timestamp   DateTime64(3, 'UTC'),
    severity    Enum8('info' = 1, 'warning' = 2, 'error' = 3),
    service     LowCardinality(String),
    message     String,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYear(timestamp)
-- Serves newest-first paging (timestamp, event_id descending) and keyset cursors on the same key.
ORDER BY (timestamp, event_id)
SETTINGS non_replicated_deduplication_window = 10000;
