-- Cluster variant of migrations/0013. Placeholders and qualified names as in 0001.
-- The public usage_ingest / log_ingest are Distributed over a Null table on each shard, sharded like
-- usage_events / log_events (by event_id), so each event reaches the shard its raw table would put it on; the
-- views there write the shard's raw table (and so its rollups) and its ledger rows (a ledger key may have rows
-- on several shards: reads merge the sets, see 0009). A re-sent batch splits the same way, and each shard drops
-- the blocks it has by token.
CREATE TABLE IF NOT EXISTS {{database}}.usage_ingest_local ON CLUSTER {{cluster}}
(
    event_id    String,
    type        Enum8('user_registered' = 1, 'session_start' = 2, 'session_end' = 3, 'activity' = 4),
    timestamp   DateTime64(3, 'UTC'),
    user_id     String,
    team_id     String,
    service     LowCardinality(String),
    session_id  String,
    attributes  Map(String, String),
    delivery    String
)
ENGINE = Null;

CREATE TABLE IF NOT EXISTS {{database}}.usage_ingest ON CLUSTER {{cluster}}
AS {{database}}.usage_ingest_local
ENGINE = Distributed({{cluster}}, {{database}}, usage_ingest_local, cityHash64(event_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.usage_ingest_events_mv ON CLUSTER {{cluster}}
TO {{database}}.usage_events_local AS
SELECT event_id, type, timestamp, user_id, team_id, service, session_id, attributes
FROM {{database}}.usage_ingest_local;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.usage_ingest_ledger_mv ON CLUSTER {{cluster}}
TO {{database}}.ingest_ledger_local AS
SELECT
    toDate(timestamp) AS day,
    team_id,
    service,
    'accepted' AS outcome,
    '' AS reason,
    uniqExactState(event_id) AS ids,
    uniqExactState(event_id, delivery) AS deliveries
FROM {{database}}.usage_ingest_local
GROUP BY day, team_id, service;

CREATE TABLE IF NOT EXISTS {{database}}.log_ingest_local ON CLUSTER {{cluster}}
(
    event_id    String,
    timestamp   DateTime64(3, 'UTC'),
    severity    Enum8('info' = 1, 'warning' = 2, 'error' = 3),
    service     LowCardinality(String),
    message     String,
    delivery    String
)
ENGINE = Null;

CREATE TABLE IF NOT EXISTS {{database}}.log_ingest ON CLUSTER {{cluster}}
AS {{database}}.log_ingest_local
ENGINE = Distributed({{cluster}}, {{database}}, log_ingest_local, cityHash64(event_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.log_ingest_events_mv ON CLUSTER {{cluster}}
TO {{database}}.log_events_local AS
SELECT event_id, timestamp, severity, service, message
FROM {{database}}.log_ingest_local;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.log_ingest_ledger_mv ON CLUSTER {{cluster}}
TO {{database}}.ingest_ledger_local AS
SELECT
    toDate(timestamp) AS day,
    '(logs)' AS team_id,
    service,
    'accepted' AS outcome,
    '' AS reason,
    uniqExactState(event_id) AS ids,
    uniqExactState(event_id, delivery) AS deliveries
FROM {{database}}.log_ingest_local
GROUP BY day, team_id, service;
