// Command-line conventions shared by the entry points: `--help` / `-h` prints the usage and exits 0.
import { parseArgs } from 'node:util';
export function handleHelp(usage: string, argv: readonly string[] = process.argv.slice(2)): void {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage.trim()}\n`);
    process.exit(0);
  }
}

/** Where the environment is described, for the usage texts of the service's roles. */
export const ENV_HELP = `Configuration comes from the environment (all optional), e.g. PORT, HOST, DATA_DIR, CLICKHOUSE_URL,
CLICKHOUSE_CLUSTER (with CLICKHOUSE_URL: a replicated, sharded cluster), KAFKA_BROKERS, AUTH_JWT_SECRET; see the
configuration reference in docs/operators.md.`;

type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;
type FlagValues<S extends FlagSpec> = {
  [K in keyof S]?: S[K]['type'] extends 'boolean' ? boolean : string;
};

/**
 * The command's flags, strictly: an unknown flag or a stray argument ends the process with one line naming it
 * (exit 2), instead of being ignored (`npm start -- --prot 9000` would otherwise start on 8080 in silence).
 */
export function parseFlags<S extends FlagSpec>(
  command: string,
  spec: S,
  argv: readonly string[] = process.argv.slice(2),
): FlagValues<S> {
  try {
    const { values } = parseArgs({
      args: [...argv],
      options: { ...spec, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    });
    return values as FlagValues<S>;
  } catch (err) {
    const e = err as { code?: string; message: string };
    const quoted = /'([^']+)'/.exec(e.message)?.[1];
    const what =
      e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
        ? `unknown option ${quoted ?? ''}`
        : e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL'
          ? `unexpected argument ${quoted ?? ''}`
          : (e.message.split('. ')[0] ?? e.message);
    process.stderr.write(`tally: ${command}: ${what.trim()}; see ${command} -- --help\n`);
    process.exit(2);
  }
}
