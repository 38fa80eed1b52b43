-- The ingestion ledger (GET /ingest/ledger): per (day, team, service), the events received, stored, dropped as
-- duplicates and rejected (by reason), from Kafka and POST /events. Every count is an exact set (uniqExact
-- states) of identities, so a replayed event, a re-formed batch or a retried insert changes no count; the
-- duplicates are the (identity, delivery) pairs beyond one per identity, so they grow only with a real
-- further arrival (another Kafka offset, another request), never with a replay of the same one.
CREATE TABLE IF NOT EXISTS ingest_ledger
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
ENGINE = AggregatingMergeTree
PARTITION BY toYear(day)
-- Serves the ledger route: a day range first, then team / service filters; outcome and reason are the groups.
ORDER BY (day, team_id, service, outcome, reason)
SETTINGS non_replicated_deduplication_window = 10000;

-- One row per arrival of an event (a Kafka message, or an item of a POST /events request), written by the
-- ingester and the HTTP sink with an insert token per batch or request. Null: nothing is kept here; the view
-- folds each insert into ingest_ledger, whose window drops a re-sent batch's block by its token.
CREATE TABLE IF NOT EXISTS ingest_arrivals
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

CREATE MATERIALIZED VIEW IF NOT EXISTS ingest_arrivals_mv TO ingest_ledger AS
SELECT
    day,
    team_id,
    service,
    outcome,
    reason,
    uniqExactState(identity) AS ids,
    uniqExactStateIf(identity, delivery, outcome = 'accepted') AS deliveries
FROM ingest_arrivals
GROUP BY day, team_id, service, outcome, reason;

CREATE MATERIALIZED VIEW IF NOT EXISTS ingest_ledger_usage_mv TO ingest_ledger AS
SELECT
    toDate(timestamp) AS day,
    team_id,
    service,
    'stored' AS outcome,
    '' AS reason,
    uniqExactState(event_id) AS ids
FROM usage_events
GROUP BY day, team_id, service;

CREATE MATERIALIZED VIEW IF NOT EXISTS ingest_ledger_logs_mv TO ingest_ledger AS
SELECT
    toDate(timestamp) AS day,
    '(logs)' AS team_id,
    service,
    'stored' AS outcome,
    '' AS reason,
    uniqExactState(event_id) AS ids
FROM log_events
GROUP BY day, team_id, service;
