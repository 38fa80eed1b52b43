// The export_schedules table's reads and writes: each change (creation, deletion) is a new row version, read
// back with FINAL so every replica and scheduler sees the newest state of a schedule.
import { type ClickHouse, INSERT_SETTINGS } from '../client.ts';
import type { ExportFormat, ReportType } from './exports-jobs.ts';
import type { BuiltQuery } from './query.ts';

export type Cadence = 'daily' | 'weekly' | 'monthly';

export interface ExportSchedule {
  schedule_id: string;
  user_id: string;
  report_type: ReportType;
  format: ExportFormat;
  cadence: Cadence;
  /** The validated filters, JSON, without dates (each run adds its period's). */
  params: string;
  webhook_url: string;
  webhook_secret: string;
  created_at: number;
  deleted: number;
  version: number;
}

const COLUMNS = `schedule_id, user_id, toString(report_type) AS report_type, toString(format) AS format,
  toString(cadence) AS cadence, params, webhook_url, webhook_secret,
  toUnixTimestamp64Milli(created_at) AS created_at, deleted, version`;

// The filter runs inside: the outer aliases (times as ms) would otherwise shadow the columns in WHERE.
const select = (where: string, tail = '') =>
  `SELECT ${COLUMNS} FROM (SELECT * FROM export_schedules FINAL WHERE deleted = 0 AND (${where}) ${tail})`;

export function buildScheduleByIdQuery(scheduleId: string): BuiltQuery {
  return { query: select('schedule_id = {id:String}'), query_params: { id: scheduleId } };
}

/** A user's live schedules, newest first. */
export function buildSchedulesOfUserQuery(userId: string): BuiltQuery {
  return {
    query: select('user_id = {user_id:String}', 'ORDER BY created_at DESC, schedule_id'),
    query_params: { user_id: userId },
  };
}

/** Every live schedule: what the scheduler walks each tick. */
export function buildLiveSchedulesQuery(): BuiltQuery {
  return { query: select('1', 'ORDER BY created_at, schedule_id'), query_params: {} };
}

type Raw = Record<keyof ExportSchedule, string | number>;

function fromRaw(r: Raw): ExportSchedule {
  return {
    schedule_id: String(r.schedule_id),
    user_id: String(r.user_id),
    report_type: String(r.report_type) as ReportType,
    format: String(r.format) as ExportFormat,
    cadence: String(r.cadence) as Cadence,
    params: String(r.params),
    webhook_url: String(r.webhook_url),
    webhook_secret: String(r.webhook_secret),
    created_at: Number(r.created_at),
    deleted: Number(r.deleted),
    version: Number(r.version),
  };
}

async function many(ch: ClickHouse, q: BuiltQuery): Promise<ExportSchedule[]> {
  const rs = await ch.client.query({ ...q, format: 'JSONEachRow' });
  return (await rs.json<Raw>()).map(fromRaw);
}

export async function getSchedule(ch: ClickHouse, scheduleId: string): Promise<ExportSchedule | undefined> {
  return (await many(ch, buildScheduleByIdQuery(scheduleId)))[0];
}

export function schedulesOfUser(ch: ClickHouse, userId: string): Promise<ExportSchedule[]> {
  return many(ch, buildSchedulesOfUserQuery(userId));
}

export function liveSchedules(ch: ClickHouse): Promise<ExportSchedule[]> {
  return many(ch, buildLiveSchedulesQuery());
}

const time = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');

/** Writes a new version of a schedule (its `version` must exceed the previous one's). */
export async function writeSchedule(ch: ClickHouse, s: ExportSchedule): Promise<void> {
  await ch.client.insert({
    table: 'export_schedules',
    values: [{ ...s, created_at: time(s.created_at) }],
    format: 'JSONEachRow',
    // No dedup window on this table; the empty token is stated so that no earlier session token leaks in.
    clickhouse_settings: { ...INSERT_SETTINGS, insert_deduplication_token: '' },
  });
}
