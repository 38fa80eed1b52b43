// `npm start`: the whole service in one process: API, ingester (when KAFKA_BROKERS is set) and storage,
// on the embedded ClickHouse engine unless CLICKHOUSE_URL names a server.

import { resolve } from 'node:path';
import { ENV_HELP, handleHelp, parseFlags } from '../core/cli.ts';
import { createLogger } from '../core/logger.ts';
import type { Ingester } from '../ingest/consumer.ts';
import { checkListenAddress, configOrExit, openStorage, orExit } from './boot.ts';
import type { Shared } from './runtime.ts';

handleHelp(
  `usage: npm start [-- --demo] [--port N] [--host H]\n\nThe whole service in one process: the HTTP API, the export worker and scheduler, and the Kafka ingester\nwhen KAFKA_BROKERS is set; storage is the embedded ClickHouse under DATA_DIR unless CLICKHOUSE_URL is set.\n  --demo     load a generated month of data once (npm run demo) and print a token\n  --port N   listen on port N (instead of PORT)\n  --host H   listen on address H (instead of HOST)\n\n${ENV_HELP}`,
);
const flags = parseFlags('npm start', {
  demo: { type: 'boolean' },
  port: { type: 'string' },
  host: { type: 'string' },
});
// A flag is the same setting as its variable, checked by the one config loader.
const config = configOrExit({
  ...process.env,
  ...(flags.port !== undefined ? { PORT: flags.port } : {}),
  ...(flags.host !== undefined ? { HOST: flags.host } : {}),
});
const logger = createLogger(config.logLevel);
await orExit(config, () => checkListenAddress(config));
// The storage opens while the rest of the service's modules load: loading them took most of a restart's time to
// /readyz (seconds under load, through tsx), and readiness waits for the storage anyway.
const storage = orExit(config, () => openStorage(config, logger));
storage.catch(() => undefined); // awaited below
const [
  { SelfLog },
  { whenOpen },
  { loadOrCreateSecret, mintToken },
  { DEMO_WAIT_MS, loadDemo },
  {
    apiExports,
    createSink,
    exportParts,
    onShutdown,
    openControlStore,
    retireLegacyTables,
    runExportWorkers,
    runSchedules,
    startApi,
    startIngester,
  },
] = await Promise.all([
  import('../clickhouse/self-log.ts'),
  import('../control/db.ts'),
  import('../core/tokens.ts'),
  import('../ingest/demo.ts'),
  import('./runtime.ts'),
]);
const secret = await orExit(config, () => loadOrCreateSecret(config.dataDir, config.auth.jwtSecret));
// The control store opens once the API listens: readiness needs the storage only, and opening PGlite runs
// PostgreSQL's start-up in WebAssembly on this thread (1-2 s of CPU on a restart, more on a loaded machine,
// measured with --cpu-prof), which beside ClickHouse's opening delayed /readyz after every restart. Whatever
// needs the store waits for it, and a failure ends the process in one line, as any start-up failure does. The
// import of an earlier version's state follows its opening.
let openControlNow!: () => void;
const opening = new Promise<Awaited<ReturnType<typeof openControlStore>>>((resolve, reject) => {
  openControlNow = () => openControlStore(config, logger).then(resolve, reject);
});
opening.catch(() => undefined); // reported below
const ch = await storage;
// One system log for the process (ingest faults, failed logins, failed jobs, webhooks), closed last.
const selfLog = new SelfLog(ch);
const control = whenOpen(opening, config.control.databaseUrl ? 'server' : 'embedded');
// Storage closes only after this step: a migration still running when the engine's connection closes (a
// SIGTERM while PGlite was still opening on a loaded machine) crashed the embedded engine on exit, or hung it.
const retiring = orExit(config, async () => retireLegacyTables(config, ch, await opening, logger));
retiring.catch(() => undefined); // awaited on shutdown
const sink = await createSink(config, ch, logger);
// `npm run demo` (npm start -- --demo): a generated month of data, loaded once, and a token to read it with.
const demo = process.argv.includes('--demo');
const demoData = demo ? await loadDemo(sink, config.dataDir) : undefined;
// In the background: the API below listens at once, whether Kafka answers or not (/readyz shows the ingester).
const ingester: Ingester | undefined = config.kafka.brokers
  ? startIngester(config, ch, logger, selfLog)
  : undefined;
if (demoData) {
  // Through Kafka the month is only acknowledged so far: the page and the printed token come once it is
  // stored, so a first look never shows partial numbers.
  const pending = await demoData.waitStored(DEMO_WAIT_MS);
  process.stdout.write(
    !demoData.loaded
      ? 'Demo: data already loaded in this data directory.\n'
      : pending === 0
        ? `Demo: loaded ${demoData.events} generated events for the 30 days from ${demoData.start}.\n`
        : `Demo: ${pending} of ${demoData.events} events published to Kafka are not stored after ${DEMO_WAIT_MS / 1000} s: is an ingester of group ${config.kafka.groupId} consuming ${config.kafka.topicSessions}? Numbers stay partial until it does.\n`,
  );
}
// Built once and shared by the routes, the export workers and the scheduler of this process.
const shared: Shared = { ch, control, logger, selfLog, parts: exportParts(config) };
// exports: the worker runs in this process; a queued job wakes it at once.
const exportWorkers = runExportWorkers(config, shared);
const exports = apiExports(config, shared, exportWorkers.notify);
// schedules: the scheduler queues each closed period's job; the workers' finished jobs fire webhooks.
const schedules = runSchedules(config, shared, exportWorkers);
const api = await orExit(config, () =>
  startApi(config, shared, { sink, secret: secret.value, exports, ...(ingester ? { ingester } : {}) }),
);
openControlNow();

// The command to mint another token, as printed: it must find the same secret, so a data directory other than
// the default one is part of it (and a configured secret has to be given to it the same way).
const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
const tokenHint =
  `${config.dataDir === resolve('data') ? '' : `DATA_DIR=${quote(config.dataDir)} `}npm run token -- --sub NAME` +
  (config.auth.jwtSecret ? ' (with the same AUTH_JWT_SECRET in its environment)' : '');

process.stdout.write(
  `Tally listening on ${api.url} (storage: ${ch.label}, ` +
    `events: ${config.kafka.brokers ? `Kafka ${config.kafka.brokers.join(',')}` : 'POST /events'})\n`,
);
if (demo && !secret.created) {
  const token = await mintToken(secret.value, {
    sub: 'demo',
    ttlSeconds: 24 * 3600,
    issuer: config.auth.issuer,
    audience: config.auth.audience,
  });
  process.stdout.write(
    `Demo token (all scopes, valid 24 hours):\n${token}\nOpen ${api.url}/ and paste it. Mint more with: ${tokenHint}\n`,
  );
}
if (secret.created) {
  const token = await mintToken(secret.value, {
    sub: 'admin',
    ttlSeconds: 30 * 24 * 3600,
    issuer: config.auth.issuer,
    audience: config.auth.audience,
  });
  process.stdout.write(
    `First start: generated a signing secret in ${config.dataDir}. Admin token (all scopes, valid 30 days):\n${token}\n` +
      `Mint more with: ${tokenHint}\n`,
  );
}

onShutdown(logger, async () => {
  await retiring;
  await api.stop();
  await schedules.stop();
  await exportWorkers.stop();
  await ingester?.stop();
  await sink.stop();
  await selfLog.close();
  await ch.close();
  await control.close();
});
