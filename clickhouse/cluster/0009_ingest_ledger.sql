-- Cluster variant of migrations/0009. Placeholders and qualified names as in 0001.
-- Every count is an exact set, so a (day, team, service) key may have rows on several shards: queries through
-- ingest_ledger merge the shards' states at the initiator (uniqExactMerge unions the sets), as on one node.
CREATE TABLE IF NOT EXISTS {{database}}.ingest_ledger_local ON CLUSTER {{cluster}}
(
    day        Date,
    -- The event's team; '(logs)' for log events, '(none)' when the event has no valid team_id.
    team_id    String,
    -- '(none)' when the event has no valid service.
    service    LowCardinality(String),
    -- accepted: arrived valid; rejected: arrived invalid (dead-lettered, or named in `rejected` by POST /events),
    -- stored: in usage_events / log_events (by the views below, so back-fills count too).
    outcome    Enum8('accepted' = 1, 'rejected' = 2, 'stored' = 3),
    -- The rejection's reason category (dead-letter metric labels: not_json, field_timestamp, ...); '' otherwise.
    reason     LowCardinality(String),
    -- Identities (event_id, or the delivery id for an event without a valid one): read with uniqExactMerge.
    ids        AggregateFunction(uniqExact, String),
    -- Accepted rows only: (identity, delivery) pairs; duplicates = uniqExactMerge(deliveries) - uniqExactMerge(ids).
    deliveries AggregateFunction(uniqExact, String, String)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toYear(day)
-- Serves the ledger route: a day range first, then team / service filters; outcome and reason are the groups.
ORDER BY (day, team_id, service, outcome, reason)
-- The views' blocks carry their insert's token; same window as the raw tables.
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS {{database}}.ingest_ledger ON CLUSTER {{cluster}}
AS {{database}}.ingest_ledger_local
ENGINE = Distributed({{cluster}}, {{database}}, ingest_ledger_local, cityHash64(day, team_id, service));

-- One row per arrival; Null, folded by the view into the shard's ingest_ledger_local. Arrivals are inserted
-- through the Distributed ingest_arrivals (synchronously, as every insert in cluster mode), sharded by the
-- ledger key, so a re-sent batch splits the same way and each shard's ledger drops the block it has by token.
CREATE TABLE IF NOT EXISTS {{database}}.ingest_arrivals_local ON CLUSTER {{cluster}}
(
    day        Date,
    team_id    String,
    service    LowCardinality(String),
    outcome    Enum8('accepted' = 1, 'rejected' = 2, 'stored' = 3),
    reason     LowCardinality(String),
    identity   String,
    -- Where this copy came from: kafka:<topic>/<partition>/<position> or http:<request uuid>.
    delivery   String
)
ENGINE = Null;

CREATE TABLE IF NOT EXISTS {{database}}.ingest_arrivals ON CLUSTER {{cluster}}
AS {{database}}.ingest_arrivals_local
ENGINE = Distributed({{cluster}}, {{database}}, ingest_arrivals_local, cityHash64(day, team_id, service));

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.ingest_arrivals_mv ON CLUSTER {{cluster}}
TO {{database}}.ingest_ledger_local AS
SELECT
    day,
    team_id,
    service,
    outcome,
    reason,
    uniqExactState(identity) AS ids,
    uniqExactStateIf(identity, delivery, outcome = 'accepted') AS deliveries
FROM {{database}}.ingest_arrivals_local
GROUP BY day, team_id, service, outcome, reason;

-- Stored counts roll up on each shard from its own raw rows, like usage_daily.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.ingest_ledger_usage_mv ON CLUSTER {{cluster}}
TO {{database}}.ingest_ledger_local AS
SELECT
    toDate(timestamp) AS day,
    team_id,
    service,
    'stored' AS outcome,
    '' AS reason,
    uniqExactState(event_id) AS ids
FROM {{database}}.usage_events_local
GROUP BY day, team_id, service;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.ingest_ledger_logs_mv ON CLUSTER {{cluster}}
TO {{database}}.ingest_ledger_local AS
SELECT
    toDate(timestamp) AS day,
    '(logs)' AS team_id,
    service,
    'stored' AS outcome,
    '' AS reason,
    uniqExactState(event_id) AS ids
FROM {{database}}.log_events_local
GROUP BY day, team_id, service;
