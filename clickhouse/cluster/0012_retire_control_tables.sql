-- The control plane (export jobs, schedules and runs, webhook deliveries) lives in PostgreSQL now (control/).
-- Applied only after the one-time import of these tables into the control store has committed (bin/runtime.ts
-- openStorage, control/import.ts). The Distributed tables first, then their shard-local tables.
DROP TABLE IF EXISTS {{database}}.webhook_deliveries ON CLUSTER {{cluster}} SYNC;

DROP TABLE IF EXISTS {{database}}.webhook_deliveries_local ON CLUSTER {{cluster}} SYNC;

DROP TABLE IF EXISTS {{database}}.export_schedule_runs ON CLUSTER {{cluster}} SYNC;

DROP TABLE IF EXISTS {{database}}.export_schedule_runs_local ON CLUSTER {{cluster}} SYNC;

DROP TABLE IF EXISTS {{database}}.export_schedules ON CLUSTER {{cluster}} SYNC;

DROP TABLE IF EXISTS {{database}}.export_schedules_local ON CLUSTER {{cluster}} SYNC;

DROP TABLE IF EXISTS {{database}}.export_jobs ON CLUSTER {{cluster}} SYNC;

DROP TABLE IF EXISTS {{database}}.export_jobs_local ON CLUSTER {{cluster}} SYNC;
