-- Log counts as pages show them. log_day_seals / log_hour_seals counted each (day, severity, service) cell's
-- distinct event_id, but a page shows each (timestamp, event_id) once, as its newest copy, filtered after that
-- choice (log_events FINAL). A log re-sent with another severity or service stayed in its old cell's id set as
-- well, and one re-sent at another time of the same day was one id but two rows: total_pages went wrong for
-- both. Here a day's counts are taken from log_events FINAL itself, per cell and UTC hour.
--
-- Valid exactly while the day's counter (the sum of log_cells_daily.inserted over the day's cells) equals
-- `inserted`, a copy landing in any cell of the day moving it whichever cell the copy it replaces is in, and
-- while log_events' parts of the day's partition still have the same `generation`: a lightweight DELETE or a
-- dropped partition removes logs without moving any counter, and changes that instead. The
-- sealer (log-day-counts.ts) counts only days whose counter has not moved for a while and writes a row only if
-- the counter read in the same statement is still the one it saw settle, so the count and the counter belong
-- together. log_day_seals and log_hour_seals are no longer written.
CREATE TABLE IF NOT EXISTS log_day_counts
(
    day       Date,
    -- The day's counter these counts were taken at.
    inserted  UInt64,
    -- log_events' active parts of the day's partition when counted, as '<lowest block>_<highest mutation>':
    -- inserts and merges leave it as it is, a DELETE (a mutation) or a drop changes it ('' on a cluster, whose
    -- parts are per shard).
    generation String,
    -- One element per cell with logs: its distinct logs (newest copies) and those per UTC hour, hour 0 first.
    cells     Array(Tuple(
        severity Enum8('info' = 1, 'warning' = 2, 'error' = 3),
        service  String,
        logs     UInt64,
        hours    Array(UInt32))),
    sealed_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(sealed_at)
PARTITION BY toYear(day)
-- Serves the read of the days whose counters moved: a few days by day, matched to their counter in memory.
ORDER BY day;
