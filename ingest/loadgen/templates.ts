// Log message templates and event attributes, varied enough to exercise CSV quoting, escaping and UTF-8.
import type { Severity } from '../../core/events.ts';
import { type Rng, WeightedTable } from './random.ts';

export const SEVERITY_TABLE = new WeightedTable<Severity>(['info', 'warning', 'error'], [75, 18, 7]);

type Template = (rng: Rng, service: string) => string;

const HOSTS = ['db-1.internal', 'db-2.internal', 'cache-a', 'payments.example.com', 'queue-0'];
const RESOURCES = ['reports', 'users', 'sessions', 'invoices', 'teams', 'exports'];
const JOBS = ['rollup-daily', 'retention', 'export-queue', 'invoice-run', 'reindex'];

const TEMPLATES: Record<Severity, readonly Template[]> = {
  info: [
    (r) => `GET /api/v1/${r.pick(RESOURCES)} 200 in ${r.int(3, 400)}ms`,
    (r) => `Scheduled job ${r.pick(JOBS)} completed in ${r.int(1, 900)}s`,
    (r) => `Processed batch of ${r.int(10, 5000)} events`,
    (r) => `Report ${r.int(1000, 99999)} generated (${r.int(0, 250000)} rows)`,
    (r) => `Connected to database replica ${r.pick(HOSTS)}`,
    (r, s) => `${s} started, version 1.${r.int(0, 40)}.${r.int(0, 9)}`,
    (r) => `Utilisateur créé: équipe ${r.int(1, 40)} ✓`,
    (r) => `- cache miss ratio ${r.int(0, 100)}%`,
  ],
  warning: [
    (r) => `Slow query on ${r.pick(RESOURCES)}: ${r.int(500, 30000)}ms`,
    (r) => `Retrying request to ${r.pick(HOSTS)} (attempt ${r.int(2, 5)})`,
    (r, s) => `Rate limit near threshold for ${s}: ${r.int(80, 99)}/100 per minute`,
    (r) => `Deprecated API version v1 used by client "sdk-${r.int(1, 9)}.${r.int(0, 9)}", please upgrade`,
    (r) => `Disk usage at ${r.int(80, 97)}% on ${r.pick(HOSTS)}`,
    (r) => `+${r.int(100, 5000)} pending jobs in queue, backlog growing`,
  ],
  error: [
    () => 'Report export failed due to timeout',
    (r) => `Connection refused: ${r.pick(HOSTS)}:${r.pick([5432, 6379, 9000, 443])}`,
    (r) =>
      `Unhandled exception in ${r.pick(JOBS)}: TypeError: Cannot read properties of undefined\n` +
      `    at handler (src/jobs/${r.pick(JOBS)}.ts:${r.int(10, 400)}:${r.int(1, 80)})`,
    (r) => `Payment provider returned 502, order ${r.int(100000, 999999)}`,
    (r) => `Failed to flush ${r.int(1, 10000)} events; will retry, see runbook`,
    (r) => `@oncall database ${r.pick(HOSTS)} unreachable`,
    (r) => `=HYPERLINK("http://evil.example/${r.int(1, 99)}") injected in report title`,
  ],
};

export function logMessage(rng: Rng, severity: Severity, service: string): string {
  return rng.pick(TEMPLATES[severity])(rng, service);
}

const PLANS = ['free', 'pro', 'enterprise'];
const CLIENTS = ['web', 'ios', 'android', 'cli'];
const REGIONS = ['eu-west-1', 'us-east-1', 'ap-south-1'];
const ACTIONS = [
  'view_dashboard',
  'export_report',
  'run_query',
  'edit_settings',
  'invite_user',
  'download_invoice',
];

/** Attributes a producer might attach; undefined for the many events that carry none. */
export function usageAttributes(rng: Rng, type: string): Record<string, string> | undefined {
  switch (type) {
    case 'user_registered':
      return rng.chance(0.7)
        ? { plan: rng.pick(PLANS), signup_source: rng.pick(['organic', 'invite', 'sso']) }
        : undefined;
    case 'session_start':
      return rng.chance(0.6)
        ? { client: rng.pick(CLIENTS), region: rng.pick(REGIONS), plan: rng.pick(PLANS) }
        : undefined;
    case 'activity':
      if (!rng.chance(0.5)) return undefined;
      return rng.chance(0.5)
        ? { action: rng.pick(ACTIONS) }
        : { action: rng.pick(ACTIONS), resource: `${rng.pick(RESOURCES)}/${rng.int(1, 5000)}` };
    default:
      return rng.chance(0.3) ? { reason: rng.pick(['logout', 'timeout', 'window_closed']) } : undefined;
  }
}
