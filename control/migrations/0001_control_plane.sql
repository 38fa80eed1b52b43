-- The control plane: rows that are claimed, counted under concurrency or updated in place. Times are epoch
-- milliseconds (bigint, UTC), the unit the service computes in; days are `date`. One dialect for PGlite and a
-- PostgreSQL server.

-- Export jobs (POST /reports/export, and one per schedule period). A worker claims one with a single
-- UPDATE ... FOR UPDATE SKIP LOCKED; its lease (lease_owner, lease_expires_at) is extended by heartbeats.
CREATE TABLE export_jobs (
    job_id           text PRIMARY KEY,
    -- The creator's identity key (jwt:<iss>:<sub> or key:<id>): only they see the job.
    user_id          text NOT NULL,
    -- UTC day of creation (a scheduled job: its period's first day).
    day              date NOT NULL,
    -- NULL when the request had none; unique per user (one job per key, however many replicas race).
    idempotency_key  text,
    report_type      text NOT NULL CHECK (report_type IN ('usage-summary', 'system-events')),
    format           text NOT NULL CHECK (format IN ('csv', 'parquet')),
    -- The validated filters as JSON, replayed by the worker.
    params           text NOT NULL,
    status           text NOT NULL CHECK (status IN ('queued', 'processing', 'completed', 'failed')),
    -- Claims so far; a lease that expires counts as a lost attempt.
    attempts         integer NOT NULL DEFAULT 0,
    lease_owner      text NOT NULL DEFAULT '',
    lease_expires_at bigint NOT NULL DEFAULT 0,
    rows_written     bigint NOT NULL DEFAULT 0,
    bytes            bigint NOT NULL DEFAULT 0,
    sha256           text NOT NULL DEFAULT '',
    file_name        text NOT NULL,
    expires_at       bigint NOT NULL DEFAULT 0,
    error            text NOT NULL DEFAULT '',
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL
);
CREATE UNIQUE INDEX export_jobs_idempotency ON export_jobs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Serves the claim: the oldest queued or leased job.
CREATE INDEX export_jobs_claimable ON export_jobs (created_at, job_id) WHERE status IN ('queued', 'processing');

-- The export quota: jobs each user created on a UTC day, taken by a conditional UPDATE (used < limit) in the
-- transaction that creates the job, so a refused or failed creation spends nothing.
CREATE TABLE export_quota (
    user_id text NOT NULL,
    day     date NOT NULL,
    used    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);

-- Scheduled exports (POST /reports/export-schedules).
CREATE TABLE export_schedules (
    schedule_id    text PRIMARY KEY,
    user_id        text NOT NULL,
    report_type    text NOT NULL,
    format         text NOT NULL,
    -- 'daily' | 'weekly' (ISO weeks, Monday first) | 'monthly'; periods are UTC.
    cadence        text NOT NULL CHECK (cadence IN ('daily', 'weekly', 'monthly')),
    -- The validated filters as JSON; each run adds the period's start_date / end_date.
    params         text NOT NULL,
    -- '' when no webhook.
    webhook_url    text NOT NULL DEFAULT '',
    -- HMAC key of X-Tally-Signature; kept in clear because signing needs it.
    webhook_secret text NOT NULL DEFAULT '',
    created_at     bigint NOT NULL,
    deleted        boolean NOT NULL DEFAULT false
);
CREATE INDEX export_schedules_user ON export_schedules (user_id, created_at) WHERE NOT deleted;

-- One row per (schedule, closed period): the primary key makes "one job per period" a constraint. job_id is
-- NULL for a period skipped on purpose (its owner's API key was revoked or expired).
CREATE TABLE export_schedule_runs (
    schedule_id  text NOT NULL REFERENCES export_schedules (schedule_id),
    period_start date NOT NULL,
    period_end   date NOT NULL,
    -- No foreign key: runs imported from an earlier version may name a job that was never written.
    job_id       text UNIQUE,
    user_id      text NOT NULL,
    created_at   bigint NOT NULL,
    PRIMARY KEY (schedule_id, period_start)
);

-- The webhook outbox: one delivery per finished scheduled job whose schedule has a webhook_url, written by the
-- trigger below in the transaction that finishes the job. Claimed like jobs (SKIP LOCKED, a lease), retried
-- at next_attempt_at.
CREATE TABLE webhook_deliveries (
    job_id           text PRIMARY KEY REFERENCES export_jobs (job_id),
    -- X-Tally-Delivery, '<job_id>:<completed|failed>': the same on every attempt; receivers deduplicate on it.
    delivery_id      text NOT NULL,
    schedule_id      text NOT NULL,
    user_id          text NOT NULL,
    event            text NOT NULL,
    url              text NOT NULL,
    state            text NOT NULL CHECK (state IN ('pending', 'delivered', 'gave_up')),
    attempts         integer NOT NULL DEFAULT 0,
    -- When the job finished: the retry time (WEBHOOK_RETRY_FOR_SECONDS) counts from here.
    finished_at      bigint NOT NULL,
    next_attempt_at  bigint NOT NULL,
    lease_owner      text NOT NULL DEFAULT '',
    lease_expires_at bigint NOT NULL DEFAULT 0,
    last_status      integer NOT NULL DEFAULT 0,
    last_error       text NOT NULL DEFAULT '',
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL
);
-- Serves the dispatchers' claim: pending deliveries by due time.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';

CREATE FUNCTION enqueue_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (job_id, delivery_id, schedule_id, user_id, event, url, state, finished_at,
                                    next_attempt_at, created_at, updated_at)
    SELECT NEW.job_id, NEW.job_id || ':' || NEW.status, s.schedule_id, s.user_id,
           CASE WHEN NEW.status = 'completed' THEN 'export.completed' ELSE 'export.failed' END,
           s.webhook_url, 'pending', NEW.updated_at, NEW.updated_at, NEW.updated_at, NEW.updated_at
    FROM export_schedule_runs r JOIN export_schedules s ON s.schedule_id = r.schedule_id
    WHERE r.job_id = NEW.job_id AND s.webhook_url <> '' AND NOT s.deleted
    ON CONFLICT (job_id) DO NOTHING;
    RETURN NEW;
END $$;

-- A job reaching completed or failed enqueues its webhook in the same transaction: the outbox.
CREATE TRIGGER export_jobs_finished AFTER UPDATE OF status ON export_jobs
    FOR EACH ROW WHEN (NEW.status IN ('completed', 'failed') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION enqueue_webhook();

-- API keys for services (npm run keys): only the SHA-256 of the secret is stored.
CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    -- Space-separated scopes.
    scopes        text NOT NULL,
    team_id       text,
    created_at    text NOT NULL,
    expires_at    text,
    revoked_at    text,
    secret_sha256 text NOT NULL
);

-- The one-time import of the state an earlier version kept in ClickHouse and API_KEYS_FILE.
CREATE TABLE control_imports (
    source      text PRIMARY KEY,
    imported_at bigint NOT NULL,
    summary     text NOT NULL
);
