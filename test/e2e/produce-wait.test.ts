// `npm run produce -- FILE --wait` through Kafka: the command ends only once every event is queryable, so the
// next read includes them all; against a group that nothing consumes for, it gives up after --wait-ms with the
// pending count in its closing line and exit status 1.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../core/tokens.ts';
import { dropTopics } from '../helpers/ingest.ts';
import { testKafka, uniqueName } from '../helpers/kafka.ts';
import { type Service, serviceEnv, startService } from '../helpers/service.ts';

const run = promisify(execFile);
const SECRET = 'produce-wait-secret-produce-wait-secret-01';

async function produce(args: string[], env: Record<string, string>) {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'bin/produce.ts', ...args], {
      env: serviceEnv(env),
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('produce --wait through Kafka', () => {
  const { kafka, brokers } = testKafka();
  const topics = { sessions: uniqueName('pw.sessions'), logs: uniqueName('pw.logs') };
  const kafkaEnv = {
    KAFKA_BROKERS: brokers.join(','),
    KAFKA_TOPIC_SESSIONS: topics.sessions,
    KAFKA_TOPIC_LOGS: topics.logs,
    KAFKA_GROUP_ID: uniqueName('pw-group'),
  };
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-produce-wait-'));
  const file = join(dataDir, 'events.ndjson');
  let service: Service;

  beforeAll(async () => {
    service = await startService({ DATA_DIR: dataDir, AUTH_JWT_SECRET: SECRET, ...kafkaEnv });
  });
  afterAll(async () => {
    service?.child.kill('SIGTERM');
    await service?.exited;
    const admin = kafka.admin();
    await admin.connect();
    await dropTopics(admin, topics);
    await admin.disconnect();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('ends once the events are stored, and the next summary counts them all', async () => {
    const lines = Array.from({ length: 300 }, (_, i) =>
      JSON.stringify({
        event_id: `pw-${i}`,
        type: 'session_start',
        timestamp: '2023-07-04T09:00:00Z',
        user_id: `pw-u${i % 120}`,
        team_id: 'pw-team',
        service: 'pw',
        session_id: `pw-s${i}`,
      }),
    );
    writeFileSync(file, `${lines.join('\n')}\n`);
    const out = await produce([file, '--wait'], { DATA_DIR: dataDir, ...kafkaEnv });
    expect(out, out.stderr).toMatchObject({ code: 0 });
    expect(out.stdout.trim().split('\n').at(-1)).toBe(
      'sent 300, accepted 300, rejected 0, retried 0, pending 0',
    );
    const token = await mintToken(SECRET, { sub: 'pw' });
    const res = await fetch(
      `${service.base}/reports/usage-summary?start_date=2023-07-01&end_date=2023-07-31&team_id=pw-team`,
      { headers: { authorization: `Bearer ${token}` } },
    );
    expect(await res.json()).toEqual({ total_users: 120, active_users: 120, total_sessions: 300 });
  });

  it('gives up after --wait-ms when no ingester consumes for the group: pending named, exit 1', async () => {
    writeFileSync(
      file,
      `${JSON.stringify({ event_id: 'pw-x', type: 'activity', timestamp: '2023-07-05T09:00:00Z', user_id: 'x', team_id: 'pw-team', service: 'pw' })}\n`,
    );
    const idle = { ...kafkaEnv, KAFKA_GROUP_ID: uniqueName('pw-idle') };
    const out = await produce([file, '--wait', '--wait-ms', '500'], { DATA_DIR: dataDir, ...idle });
    expect(out.code).toBe(1);
    expect(out.stdout.trim().split('\n').at(-1)).toBe('sent 1, accepted 1, rejected 0, retried 0, pending 1');
    const bad = await produce([file, '--wait-ms', '5'], { DATA_DIR: dataDir, ...kafkaEnv });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--wait-ms needs --wait');
  });
});
