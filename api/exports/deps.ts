// What the export routes need, injected by createApp's caller (bin/runtime.ts, or a test).
import type { ClickHouse } from '../../clickhouse/client.ts';
import type { JobAdmission } from './quota.ts';
import type { KeyRing } from './signing.ts';
import type { ExportStore } from './store.ts';

export interface ExportDeps {
  ch: ClickHouse;
  admission: JobAdmission;
  store: ExportStore;
  keys: KeyRing;
  /** Origin of download_url (PUBLIC_BASE_URL), without a trailing slash. */
  publicBaseUrl: string;
  /** Lifetime of a signed link (EXPORT_URL_TTL_SECONDS). */
  urlTtlSeconds: number;
  /** Called after a job is queued (wakes an in-process worker). */
  onQueued?: () => void;
  now?: () => number;
}
