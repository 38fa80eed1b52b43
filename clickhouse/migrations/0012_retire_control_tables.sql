-- The control plane (export jobs, schedules and runs, webhook deliveries) lives in PostgreSQL now (control/).
-- Applied only after the one-time import of these tables into the control store has committed (bin/runtime.ts
-- openStorage, control/import.ts), so an upgrade keeps every job, schedule, run and pending delivery.
DROP TABLE IF EXISTS webhook_deliveries;

DROP TABLE IF EXISTS export_schedule_runs;

DROP TABLE IF EXISTS export_schedules;

DROP TABLE IF EXISTS export_jobs;
