// What the export routes need, injected by createApp's caller (bin/, or a test).
import type { ControlStore } from '../../control/store.ts';
import type { KeyRing } from '../../core/exports/signing.ts';
import type { ExportStore } from '../../core/exports/store.ts';
import type { JobAdmission } from './quota.ts';

export interface ExportDeps {
  /** The control store: jobs and their state. */
  control: ControlStore;
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
