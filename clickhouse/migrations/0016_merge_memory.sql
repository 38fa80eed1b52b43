-- Bounds on what a merge holds in memory, which on the embedded engine is the service's own memory (issue 15:
-- the ingesting process's peak RSS <= 600 MB). Measured with bench/ingest.ts (1,000,000 events through Kafka;
-- each merge's memory sampled from system.merges while the ingester ran; bench/RESULTS.md, ingest).
--
-- ingest_ledger: a merge held about five times the bytes it merged, whatever the block size, the index
-- granularity or the number of parts (a merge of the whole 30 MB ledger of 1,000,000 events: 150-320 MB), so
-- its memory grew with the yearly partition. Parts of at most 16 MiB (~500,000 events' ids) bound each merge
-- at ~80 MB; the rest of the year's ledger stays in more parts (~2 per million events: a year of 100 million
-- events is ~200-400 parts, well below the 1,000 at which the engine delays inserts; busier deployments raise
-- the bound or use a server, docs/operators.md). merge_max_block_size 64: the merged states leave in small
-- blocks (a 25-part merge: 318 -> 180 MB).
ALTER TABLE ingest_ledger MODIFY SETTING merge_max_block_size = 64, max_bytes_to_merge_at_max_space_in_pool = 16777216;

-- The raw tables: vertical merges (the sort key's columns first, then each other column on its own) instead of
-- every column at once, which this table's 9 columns (6 for logs) were too few to get: 75 -> 40 MB for
-- usage_events' largest merge, 30 -> 17 MB for log_events'.
ALTER TABLE usage_events MODIFY SETTING vertical_merge_algorithm_min_columns_to_activate = 1;

ALTER TABLE log_events MODIFY SETTING vertical_merge_algorithm_min_columns_to_activate = 1;
