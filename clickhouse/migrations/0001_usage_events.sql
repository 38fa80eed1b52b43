-- Raw usage events, one row per event. A re-sent event lands as an extra row until a merge collapses it, so
-- answers never count rows here: they come from the rollups' idempotent aggregate states.
CREATE TABLE IF NOT EXISTS usage_events
(
    event_id    String,
    type        Enum8('user_registered' = 1, 'session_start' = 2, 'session_end' = 3, 'activity' = 4),
    timestamp   DateTime64(3, 'UTC'),
    user_id     String,
    team_id     String,
    service     LowCardinality(String),
    session_id  String,
    attributes  Map(String, String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
-- By year: back-filled data spans decades, and a batch must not touch more than a few dozen partitions.
PARTITION BY toYear(timestamp)
-- Serves per-team/service scans by day; ends in event_id so that merges collapse a re-sent event.
ORDER BY (team_id, service, toDate(timestamp), user_id, event_id)
SETTINGS non_replicated_deduplication_window = 10000;
