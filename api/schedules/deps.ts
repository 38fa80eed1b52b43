// What the schedule routes need, injected by createApp's caller (bin/runtime.ts, or a test).
import type { ExportDeps } from '../exports/deps.ts';
import type { WebhookAllowList } from '../webhooks/allow-list.ts';

export interface ScheduleDeps {
  /** The export parts: storage, link signing, file naming. */
  exports: ExportDeps;
  /** WEBHOOK_ALLOWED_HOSTS: a webhook_url must pass it (checked again at every delivery). */
  allow: WebhookAllowList;
  /** SCHEDULES_PER_USER. */
  perUser: number;
  now?: () => number;
}
