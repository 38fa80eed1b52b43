// Two services with Kafka in one suite, as parallel test files run them: each on topics and a consumer group of
// its own, each writing with read-your-writes. Neither ever counts the other's events, and each answer is
// complete the moment its POST returns 200.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../core/tokens.ts';
import { dropTopics } from '../helpers/ingest.ts';
import { testKafka, uniqueName } from '../helpers/kafka.ts';
import { type Service, startService } from '../helpers/service.ts';

const SECRET = 'side-by-side-secret-side-by-side-0123456';

function usage(id: string, user: string, team: string) {
  return {
    event_id: id,
    type: 'session_start',
    timestamp: '2024-02-10T12:00:00Z',
    user_id: user,
    team_id: team,
    service: 'side',
    session_id: `s-${id}`,
  };
}

describe('two services with Kafka side by side', () => {
  const { kafka, brokers } = testKafka();
  const sides = ['left', 'right'].map((name) => ({
    name,
    dataDir: mkdtempSync(join(tmpdir(), `tally-${name}-`)),
    topics: { sessions: uniqueName(`${name}.sessions`), logs: uniqueName(`${name}.logs`) },
    groupId: uniqueName(`${name}-group`),
    service: undefined as Service | undefined,
  }));
  let token: string;

  beforeAll(async () => {
    token = await mintToken(SECRET, { sub: 'side', scope: 'read:analytics write:events' });
    await Promise.all(
      sides.map(async (s) => {
        s.service = await startService({
          DATA_DIR: s.dataDir,
          AUTH_JWT_SECRET: SECRET,
          KAFKA_BROKERS: brokers.join(','),
          KAFKA_TOPIC_SESSIONS: s.topics.sessions,
          KAFKA_TOPIC_LOGS: s.topics.logs,
          KAFKA_GROUP_ID: s.groupId,
          INGEST_BATCH_WAIT_MS: '200',
        });
      }),
    );
  });
  afterAll(async () => {
    const admin = kafka.admin();
    await admin.connect();
    for (const s of sides) {
      s.service?.child.kill('SIGTERM');
      await s.service?.exited;
      await dropTopics(admin, s.topics);
      rmSync(s.dataDir, { recursive: true, force: true });
    }
    await admin.disconnect();
  });

  it('each counts exactly its own events, at once after wait=stored', async () => {
    // Interleaved writes of a shared team name: a service that consumed the other's topics would count both.
    for (let round = 1; round <= 5; round++) {
      await Promise.all(
        sides.map(async (s, i) => {
          const n = 10 * (i + 1);
          const batch = Array.from({ length: n }, (_, k) =>
            usage(`${s.name}-${round}-${k}`, `${s.name}-u${round}-${k}`, 'shared-team'),
          );
          const res = await fetch(`${s.service?.base}/events?wait=stored`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify(batch),
          });
          expect(res.status).toBe(200);
          const qs = new URLSearchParams({
            start_date: '2024-02-01',
            end_date: '2024-02-29',
            team_id: 'shared-team',
          });
          const summary = await fetch(`${s.service?.base}/reports/usage-summary?${qs}`, {
            headers: { authorization: `Bearer ${token}` },
          });
          expect({ side: s.name, round, answer: await summary.json() }).toEqual({
            side: s.name,
            round,
            answer: { total_users: n * round, active_users: n * round, total_sessions: n * round },
          });
        }),
      );
    }
  });
});
