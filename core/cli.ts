// Command-line conventions shared by the entry points: `--help` / `-h` prints the usage and exits 0.
export function handleHelp(usage: string, argv: readonly string[] = process.argv.slice(2)): void {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage.trim()}\n`);
    process.exit(0);
  }
}

/** Where the environment is described, for the usage texts of the service's roles. */
export const ENV_HELP = `Configuration comes from the environment (all optional), e.g. PORT, HOST, DATA_DIR, CLICKHOUSE_URL,
CLICKHOUSE_CLUSTER (with CLICKHOUSE_URL: a replicated, sharded cluster), KAFKA_BROKERS, AUTH_JWT_SECRET; see the
README's Configuration table.`;
