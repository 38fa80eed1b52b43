// The process's Prometheus registry, shared by the API and the ingester; served at GET /metrics.
// Metrics carry no tenant data: no user, team or token appears in a label.
import { collectDefaultMetrics, Registry } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'tally_process_' });
