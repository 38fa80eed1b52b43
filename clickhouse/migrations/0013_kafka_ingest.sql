-- Where the ingester inserts Kafka batches: the events with each one's delivery (kafka:<topic>/<partition>/
-- <first>-<last>/u<i>, or /l<i> for logs, as ingest/ledger.ts defined it). One insert then stores the events
-- (the first view writes them into the raw table, whose own views fill every rollup as for any insert) and
-- records their arrivals in the ingestion ledger (the second view), which before took an insert of its own of
-- one row per event into ingest_arrivals, measured at ~0.8x the cost of the events' insert. Null: nothing is
-- kept here. The insert's token reaches both views' blocks (deduplicate_blocks_in_dependent_materialized_views),
-- so a re-formed batch adds nothing to the raw table, the rollups or the ledger; the ledger's counts are exact
-- sets besides.
CREATE TABLE IF NOT EXISTS usage_ingest
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

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_ingest_events_mv TO usage_events AS
SELECT event_id, type, timestamp, user_id, team_id, service, session_id, attributes
FROM usage_ingest;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_ingest_ledger_mv TO ingest_ledger AS
SELECT
    toDate(timestamp) AS day,
    team_id,
    service,
    'accepted' AS outcome,
    '' AS reason,
    uniqExactState(event_id) AS ids,
    uniqExactState(event_id, delivery) AS deliveries
FROM usage_ingest
GROUP BY day, team_id, service;

CREATE TABLE IF NOT EXISTS log_ingest
(
    event_id    String,
    timestamp   DateTime64(3, 'UTC'),
    severity    Enum8('info' = 1, 'warning' = 2, 'error' = 3),
    service     LowCardinality(String),
    message     String,
    delivery    String
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS log_ingest_events_mv TO log_events AS
SELECT event_id, timestamp, severity, service, message
FROM log_ingest;

CREATE MATERIALIZED VIEW IF NOT EXISTS log_ingest_ledger_mv TO ingest_ledger AS
SELECT
    toDate(timestamp) AS day,
    '(logs)' AS team_id,
    service,
    'accepted' AS outcome,
    '' AS reason,
    uniqExactState(event_id) AS ids,
    uniqExactState(event_id, delivery) AS deliveries
FROM log_ingest
GROUP BY day, team_id, service;
