// Assembles the export routes' dependencies from the configuration and the control store.
import type { ControlStore } from '../../control/store.ts';
import type { Config } from '../../core/config.ts';
import { loadOrCreateKeyRing } from '../../core/exports/signing.ts';
import { ExportStore } from '../../core/exports/store.ts';
import type { ExportDeps } from './deps.ts';
import { JobAdmission } from './quota.ts';

export function exportDeps(config: Config, control: ControlStore, onQueued?: () => void): ExportDeps {
  return {
    control,
    admission: new JobAdmission(control, config.exportJobsPerDay),
    store: new ExportStore(config.exports.dir),
    keys: loadOrCreateKeyRing(config.dataDir),
    publicBaseUrl: config.publicBaseUrl,
    urlTtlSeconds: config.exportUrlTtlSeconds,
    ...(onQueued ? { onQueued } : {}),
  };
}
