-- A yearly partition that has taken no insert for an hour is merged into one part, by the engine itself.
--
-- Why: the reads these tables serve cost a few milliseconds per part they open, and FINAL (log pages, the
-- pairs) merges every part whose key range overlaps the page. The engine's usual merge choice leaves a back-fill
-- as the handful of parts it arrived in, each spanning the whole year, for good: at 100M events, log_events'
-- 2025 partition stayed 6 year-long parts, so an hour of logs read a granule from each of the 6 and merged them
-- (a middle page 16-17 ms p50 in process, 7 ms once merged); usage_user_days stayed 7 parts and 4.4 times the
-- rows of its 2.2M keys (a user's summary 7.8-8.5 ms, 3.0-3.9 once merged).
--
-- on_partition_only: only once every part of the partition is an hour old, so the partition that takes today's
-- events is left to the usual merges, and a partition is rewritten at most once per quiet hour. Measured at
-- 100M events (product shape, embedded engine, one merge at a time): the five tables' partitions merged in
-- 40 s, each merge holding 14-77 MB (system.merges), the process's RSS 270 MB at rest, 334-392 MB at the
-- peak of each. Not the tables of uniqExact states (usage_daily, log_cells_daily, ingest_ledger), whose merges
-- hold whole sets: log_cells_daily's 2025 partition merged at 2.3 GB RSS (its ids' sets for a year).
ALTER TABLE log_events MODIFY SETTING min_age_to_force_merge_seconds = 3600, min_age_to_force_merge_on_partition_only = 1;

ALTER TABLE usage_user_days MODIFY SETTING min_age_to_force_merge_seconds = 3600, min_age_to_force_merge_on_partition_only = 1;

ALTER TABLE usage_points MODIFY SETTING min_age_to_force_merge_seconds = 3600, min_age_to_force_merge_on_partition_only = 1;

ALTER TABLE usage_points_by_day MODIFY SETTING min_age_to_force_merge_seconds = 3600, min_age_to_force_merge_on_partition_only = 1;

ALTER TABLE usage_pairs MODIFY SETTING min_age_to_force_merge_seconds = 3600, min_age_to_force_merge_on_partition_only = 1;
