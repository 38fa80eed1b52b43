-- Where a page of logs lies inside its day. log_day_seals tells which days hold page N; the page was then read
-- with FINAL over the whole day (54,000 logs a day at 100M events: most of a logs request's time). Here each
-- sealed cell also keeps its distinct logs per UTC hour, so the page is read from the hours that hold it.
--
-- Valid exactly while log_day_seals' seal of the same cell is: the hours were counted at the cell's counter
-- value `inserted`, and a read uses them only while the counter still says the same. The sealer writes a row
-- only when the hours add up to the cell's sealed count (log-day-counts.ts), so hours read while an insert
-- was half-way through its views are never kept.
CREATE TABLE IF NOT EXISTS log_hour_seals
(
    day       Date,
    severity  Enum8('info' = 1, 'warning' = 2, 'error' = 3),
    service   LowCardinality(String),
    -- The cell's counter (sum of log_cells_daily.inserted) these hours belong to.
    inserted  UInt64,
    -- Distinct event_id per UTC hour of the day, hour 0 first (24 elements).
    hours     Array(UInt32),
    sealed_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(sealed_at)
PARTITION BY toYear(day)
-- Serves the read's join on (cell, counter), like log_day_seals.
ORDER BY (day, severity, service);
