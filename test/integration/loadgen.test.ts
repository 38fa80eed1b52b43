// The client tools finish: `npm run loadgen` against a service whose ingest budget is 2 requests a minute
// honours Retry-After, retries, and ends with one line (sent, accepted, rejected, retried); what it sent is
// exactly what the API then answers. A wrong address is one line on stderr, no stack trace, exit 1.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../core/tokens.ts';
import { freePort, type Service, startService } from '../helpers/service.ts';

const run = promisify(execFile);
const SECRET = 'loadgen-test-secret-loadgen-test-secret-0123';
// The tools' own environment: no Kafka (the runner's KAFKA_BROKERS would send them there), the service's secret.
const toolEnv = (dataDir: string) => ({
  ...process.env,
  KAFKA_BROKERS: '',
  AUTH_JWT_SECRET: SECRET,
  DATA_DIR: dataDir,
});

async function tool(args: string[], env: NodeJS.ProcessEnv) {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', ...args], {
      env,
      timeout: 240_000,
      maxBuffer: 32 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('loadgen and produce', () => {
  let service: Service;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'tally-loadgen-'));
    service = await startService({
      KAFKA_BROKERS: '',
      DATA_DIR: dataDir,
      AUTH_JWT_SECRET: SECRET,
      INGEST_RATE_LIMIT_PER_MINUTE: '2',
      LOG_LEVEL: 'silent',
    });
  });
  afterAll(async () => {
    service?.child.kill('SIGTERM');
    await service?.exited;
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('past the ingest budget: waits as told, retries, ends with one line, and the answers are exact', async () => {
    const answers = join(dataDir, 'answers.json');
    const out = await tool(
      [
        'bin/loadgen.ts',
        '--events',
        '12000',
        '--seed',
        '5',
        '--url',
        service.base,
        '--answers',
        answers,
        '--samples',
        '4',
      ],
      toolEnv(dataDir),
    );
    expect(out.code, out.stderr).toBe(0);
    const lines = out.stdout.trim().split('\n');
    // The account is the last line, after the answers file's.
    const summary = lines[lines.length - 1];
    const m = /^sent (\d+), accepted (\d+), rejected (\d+), retried (\d+)$/.exec(summary ?? '');
    expect(m, out.stdout).not.toBeNull();
    const [sent, accepted, rejected, retried] = (m as RegExpExecArray).slice(1).map(Number) as [
      number,
      number,
      number,
      number,
    ];
    expect(sent).toBe(12_000);
    expect(accepted + rejected).toBe(sent);
    // 3 requests of at most 5,000 events, 2 allowed a minute: the third waited for its Retry-After at least once.
    expect(retried).toBeGreaterThanOrEqual(1);
    expect(out.stderr).not.toMatch(/\n\s+at /);

    const token = await mintToken(SECRET, { sub: 'checker', scope: 'read:analytics' });
    const { answers: expected } = JSON.parse(readFileSync(answers, 'utf8')) as {
      answers: { path: string; expected: unknown }[];
    };
    expect(expected.length).toBeGreaterThan(0);
    for (const a of expected) {
      const res = await fetch(`${service.base}${a.path}`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status, a.path).toBe(200);
      const body = (await res.json()) as Record<string, unknown>;
      delete body.next_cursor;
      expect(body, a.path).toEqual(a.expected);
    }
  });

  it('a wrong address: one line on stderr, exit 1, for loadgen and produce', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const file = join(dataDir, 'one.ndjson');
    writeFileSync(file, '{"event_id":"x"}\n');
    for (const args of [
      ['bin/loadgen.ts', '--events', '10', '--url', closed],
      ['bin/produce.ts', file, '--url', closed],
    ]) {
      const out = await tool(args, toolEnv(dataDir));
      expect(out.code, args[0]).toBe(1);
      const errLines = out.stderr.trim().split('\n');
      expect(errLines, out.stderr).toHaveLength(1);
      expect(errLines[0]).toMatch(
        new RegExp(
          `^(loadgen|produce): cannot reach ${closed}/events: ECONNREFUSED \\(sent \\d+, accepted 0, rejected 0, retried 0\\)$`,
        ),
      );
    }
  });
});
