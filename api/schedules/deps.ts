// What the schedule routes need, injected by createApp's caller (bin/, or a test).
import type { WebhookAllowList } from '../../core/webhooks/allow-list.ts';
import type { ExportDeps } from '../exports/deps.ts';

export interface ScheduleDeps {
  /** The export parts: control store, link signing, file naming. */
  exports: ExportDeps;
  /** WEBHOOK_ALLOWED_HOSTS: a webhook_url must pass it (checked again at every delivery). */
  allow: WebhookAllowList;
  /** SCHEDULES_PER_USER. */
  perUser: number;
  now?: () => number;
}
