// ClickHouse's JDBC driver for tests, fetched once from Maven Central (as scripts/kafka.sh fetches Kafka) into
// .cache/, keyed by the pom's content, and a Java program run on it with the JDK's source launcher. Needs
// Java 17+ and Maven, which the local Kafka broker needs already.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');
const CLIENT = join(ROOT, 'test', 'clients', 'jdbc');

/** The driver's jars (a directory), fetched when the pom changed. */
export function jdbcJars(): string {
  const pom = join(CLIENT, 'pom.xml');
  const dir = join(ROOT, '.cache', 'jdbc-jars');
  const stamp = join(dir, 'tally-pom.sha256');
  const hash = createHash('sha256').update(readFileSync(pom)).digest('hex');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === hash) return dir;
  rmSync(dir, { recursive: true, force: true });
  execFileSync(
    'mvn',
    [
      '-B',
      '-ntp',
      '-q',
      '-Dstyle.color=never',
      '-f',
      pom,
      'dependency:copy-dependencies',
      `-DoutputDirectory=${dir}`,
    ],
    { stdio: 'inherit', timeout: 300_000 },
  );
  writeFileSync(stamp, hash);
  return dir;
}

/** Runs test/clients/jdbc/SqlClient.java with `args`; its stdout. */
export function runJdbcClient(args: readonly string[]): string {
  const jars = jdbcJars();
  return execFileSync('java', ['-cp', `${jars}/*`, join(CLIENT, 'SqlClient.java'), ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
}
