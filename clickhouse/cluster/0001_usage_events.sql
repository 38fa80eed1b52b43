-- Cluster variant of migrations/0001 (CLICKHOUSE_CLUSTER set). {{database}} and {{cluster}} are filled in by
-- migrate.ts; {shard}, {replica}, {database} and {table} in the replication path are the server's macros.
-- Every name is qualified because ON CLUSTER DDL runs on the other hosts, whose current database is not ours.
--
-- usage_events_local holds one shard's events, replicated within the shard. Same columns, sort key and
-- partitions as the single-node table, so reads and merges behave alike per shard.
CREATE TABLE IF NOT EXISTS {{database}}.usage_events_local ON CLUSTER {{cluster}}
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
-- By year: back-filled data spans decades, and a batch must not touch more than a few dozen partitions.
PARTITION BY toYear(timestamp)
-- Serves per-team/service scans by day; ends in event_id so that merges collapse a re-sent event.
ORDER BY (team_id, service, toDate(timestamp), user_id, event_id)
-- Replicated tables deduplicate inserts by default (block ids in Keeper), which is what the ingester's
-- insert_deduplication_token relies on. Both limits stated: 10000 blocks like the single-node window, and a
-- week rather than the server's default hour, so a batch retried after a long outage is still recognised.
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

-- The public name is the Distributed table: data engineers and the service read and insert here. Sharded by a
-- hash of event_id because ReplacingMergeTree collapses duplicates, and FINAL hides them, only within one
-- table: every copy of an event must land on the same shard. (A user's events spread over shards; the rollups
-- are built for that, see 0003.)
CREATE TABLE IF NOT EXISTS {{database}}.usage_events ON CLUSTER {{cluster}}
AS {{database}}.usage_events_local
ENGINE = Distributed({{cluster}}, {{database}}, usage_events_local, cityHash64(event_id));
