// The attack table on the real engine (app.request, no socket): every forged, stale or misused credential is
// refused with the contract's status and JSON; team-bound callers read only their team; API keys work, and
// unknown, revoked, expired and tampered keys get one identical 401; each refusal lands in the system log.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportSPKI, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import { recordAuthFailures } from '../../api/auth/audit.ts';
import { JwksCache } from '../../api/auth/jwks.ts';
import type { ExportDeps } from '../../api/exports/deps.ts';
import { JobAdmission } from '../../api/exports/quota.ts';
import { type AuthFailureReport, createAuthenticator } from '../../api/middleware/auth.ts';
import { SelfLog } from '../../clickhouse/self-log.ts';
import { createKey, revokeKey } from '../../core/api-keys.ts';
import { ExportStore } from '../../core/exports/store.ts';
import { createLogger } from '../../core/logger.ts';
import { WebhookAllowList } from '../../core/webhooks/allow-list.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { memoryControl } from '../helpers/control.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';
import { fileKeys } from '../helpers/keys.ts';
import { type IdpKey, type JwksServer, makeKey, signWith, startJwksServer } from './security-jwks-server.ts';

const SECRET = 'security-test-secret-security-test-secret-0123';
const ISSUER = 'https://idp.test/';
const AUDIENCE = 'tally-api';
const hmac = new TextEncoder().encode(SECRET);
const SUMMARY = '/reports/usage-summary?start_date=2025-01-01&end_date=2025-12-31';
const TIMESERIES = '/reports/usage-timeseries?start_date=2025-01-01&end_date=2025-01-31&interval=month';
const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

describe('security: authentication, scopes, team isolation, API keys', () => {
  let engine: TestEngine;
  let idp: JwksServer;
  let k1: IdpKey;
  let app: ReturnType<typeof createApp>;
  let selfLog: SelfLog;
  let keyDir: string;
  let keysPath: string;
  const reports: AuthFailureReport[] = [];

  // A valid HS256 token with the configured iss/aud, shaped by the overrides.
  const hs = (claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}, key = hmac) =>
    new SignJWT({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'alice',
      exp: now() + 300,
      scope: 'read:analytics',
      ...claims,
    })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', ...header } as { alg: string })
      .sign(key);
  const call = (path: string, headers: Record<string, string>, init: RequestInit = {}) =>
    app.request(path, { ...init, headers });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  beforeAll(async () => {
    engine = await openTestEngine();
    k1 = await makeKey('k1');
    idp = await startJwksServer([k1]);
    keyDir = mkdtempSync(join(tmpdir(), 'tally-keys-'));
    keysPath = join(keyDir, 'api-keys.json');
    selfLog = new SelfLog(engine.ch);
    const record = recordAuthFailures(selfLog);
    // Export and schedule routes too: report_admin as a role, and team binding on schedules.
    const exports: ExportDeps = {
      control: await memoryControl(),
      admission: new JobAdmission(await memoryControl(), 10),
      store: new ExportStore(join(keyDir, 'exports')),
      keys: { current: 'k1', keys: new Map([['k1', Buffer.alloc(32, 5)]]) },
      publicBaseUrl: 'https://tally.example.test',
      urlTtlSeconds: 600,
    };
    app = createApp({
      ch: engine.ch,
      sink: createDirectSink(engine.ch),
      logger: createLogger('silent'),
      auth: createAuthenticator({
        secret: SECRET,
        issuer: ISSUER,
        audience: AUDIENCE,
        jwks: new JwksCache({ url: idp.url }),
        // Every lookup looks at the file again, so a revocation shows at once.
        keys: fileKeys(keysPath),
      }),
      onAuthFailure: (f) => {
        reports.push(f);
        record(f);
      },
      exports,
      schedules: { exports, allow: new WebhookAllowList(['hooks.example.com']), perUser: 5 },
    });
    const ev = (id: string, team: string, type = 'session_start') => ({
      event_id: id,
      type,
      timestamp: '2025-01-05T10:00:00Z',
      user_id: `u-${id}`,
      team_id: team,
      service: 'billing',
      session_id: `s-${id}`,
    });
    const res = await call('/events', bearer(await hs({ scope: 'write:events' })), {
      method: 'POST',
      body: JSON.stringify([ev('a', 't1'), ev('b', 't1'), ev('c', 't2')]),
    });
    expect(res.status).toBe(202);
  });
  afterAll(async () => {
    await idp?.close();
    await engine?.dispose();
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  });

  async function expectRefused(res: Response, status: 401 | 403, credential?: string) {
    expect(res.status).toBe(status);
    const text = await res.text();
    const body = JSON.parse(text) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['error', 'message']);
    expect(body.error).toBe(status === 401 ? 'Unauthorized' : 'Forbidden');
    if (status === 401) expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    if (credential) expect(text).not.toContain(credential);
    return body;
  }

  it('refuses every forged, stale or misused JWT with 401 and the reason in the failure log', async () => {
    const rsaPem = await exportSPKI(
      await crypto.subtle.importKey(
        'jwk',
        k1.publicJwk,
        { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
        true,
        ['verify'],
      ),
    );
    const attacker = await makeKey('k1');
    const cases: [string, string, string][] = [
      ['expired', await hs({ exp: now() - 120 }), 'expired'],
      ['expired beyond the 30 s tolerance', await hs({ exp: now() - 31 }), 'expired'],
      ['not yet valid', await hs({ nbf: now() + 120 }), 'not-yet-valid'],
      [
        'bad signature',
        await hs({}, {}, new TextEncoder().encode('another-secret-another-secret-0123456')),
        'bad-signature',
      ],
      [
        'alg none',
        `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'alice', exp: now() + 60, scope: 'read:analytics' })}.`,
        'algorithm',
      ],
      [
        'HS256 keyed with the RSA public key (PEM)',
        await hs({}, {}, new TextEncoder().encode(rsaPem)),
        'bad-signature',
      ],
      [
        'HS256 keyed with the RSA public JWK',
        await hs({}, { kid: 'k1' }, new TextEncoder().encode(JSON.stringify(k1.publicJwk))),
        'bad-signature',
      ],
      [
        'RS256 by another key under a known kid',
        await signWith(attacker, { iss: ISSUER, aud: AUDIENCE, sub: 'alice' }),
        'bad-signature',
      ],
      [
        'unknown kid',
        await signWith(await makeKey('k-unknown'), { iss: ISSUER, aud: AUDIENCE, sub: 'alice' }),
        'unknown-kid',
      ],
      [
        'HS384 (not on the allow-list)',
        await new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: 'alice', exp: now() + 60 })
          .setProtectedHeader({ alg: 'HS384', typ: 'JWT' })
          .sign(hmac),
        'algorithm',
      ],
      ['wrong issuer', await hs({ iss: 'https://evil.test/' }), 'claims'],
      ['wrong audience', await hs({ aud: 'someone-else' }), 'claims'],
      [
        'no exp',
        await new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: 'alice' })
          .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
          .sign(hmac),
        'claims',
      ],
      ['typ JWE', await hs({}, { typ: 'JWE' }), 'claims'],
      [
        'RS256 carrying its own key in the header (jwk), no kid',
        await new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: 'alice', exp: now() + 60 })
          .setProtectedHeader({ alg: 'RS256', typ: 'JWT', jwk: attacker.publicJwk })
          .sign(attacker.privateKey),
        'bad-signature',
      ],
      ['garbage', 'not.a.jwt', 'malformed'],
    ];
    for (const [name, token, reason] of cases) {
      reports.length = 0;
      const res = await call(SUMMARY, bearer(token));
      await expectRefused(res, 401, token);
      expect(
        reports.map((r) => r.reason),
        name,
      ).toEqual([reason]);
      expect(JSON.stringify(reports), name).not.toContain(token);
    }
    // A token valid in every respect passes, HS256 and RS256 alike (so the refusals above are not blanket ones).
    expect((await call(SUMMARY, bearer(await hs()))).status).toBe(200);
    expect(
      (await call(SUMMARY, bearer(await signWith(k1, { iss: ISSUER, aud: AUDIENCE, sub: 'svc' })))).status,
    ).toBe(200);
    expect((await call(SUMMARY, bearer(await hs({ exp: now() - 10 })))).status).toBe(200); // within the tolerance
  });

  it('needs the route scope as a whole word (403), scp arrays and roles count', async () => {
    for (const scope of [
      'write:events',
      'read:analytics:all',
      'xread:analytics',
      'read:analyticsX',
      'read:analytics,write:events',
    ]) {
      await expectRefused(await call(SUMMARY, bearer(await hs({ scope }))), 403);
    }
    await expectRefused(
      await call(SUMMARY, bearer(await hs({ scope: undefined, roles: ['read:analytics'] }))),
      403,
    );
    expect((await call(SUMMARY, bearer(await hs({ scope: 'write:events read:analytics' })))).status).toBe(
      200,
    );
    expect(
      (await call(SUMMARY, bearer(await hs({ scope: undefined, scp: ['read:analytics'] })))).status,
    ).toBe(200);
    const post = await call('/events', bearer(await hs({ scope: 'read:analytics' })), {
      method: 'POST',
      body: '[]',
    });
    await expectRefused(post, 403);
  });

  it('binds a team-bound token to its team in every route', async () => {
    const t2 = bearer(await hs({ team_id: 't2' }));
    const own = await call(SUMMARY, t2);
    expect(await own.json()).toEqual({ total_users: 1, active_users: 1, total_sessions: 1 });
    expect((await call(`${SUMMARY}&team_id=t2`, t2)).status).toBe(200);
    await expectRefused(await call(`${SUMMARY}&team_id=t1`, t2), 403);
    await expectRefused(await call(`${TIMESERIES}&team_id=t1`, t2), 403);
    const series = await call(`${TIMESERIES}&group_by=team`, t2);
    expect(await series.json()).toEqual({
      rows: [{ period: '2025-01-01', team_id: 't2', active_users: 1, total_sessions: 1 }],
    });
    await expectRefused(await call('/logs/system-events', t2), 403);
    // An unbound token reads both.
    expect(await (await call(SUMMARY, bearer(await hs()))).json()).toMatchObject({ total_sessions: 3 });
  });

  it('accepts report_admin as an entry of the roles claim on export routes (no scope needed)', async () => {
    const json = { 'content-type': 'application/json' };
    const body = JSON.stringify({ report_type: 'system-events', format: 'csv' });
    const byRole = bearer(await hs({ sub: 'role-admin', scope: undefined, roles: ['report_admin'] }));
    const created = await call('/reports/export', { ...byRole, ...json }, { method: 'POST', body });
    expect(created.status).toBe(202);
    const { job_id } = (await created.json()) as { job_id: string };
    const status = await call(`/reports/export/${job_id}`, byRole);
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ job_id, status: 'queued' });
    // A role among others, and roles as a space-separated string, count the same.
    const among = bearer(await hs({ sub: 'role-admin', scope: undefined, roles: 'viewer report_admin' }));
    expect((await call(`/reports/export/${job_id}`, among)).status).toBe(200);
    // Not as a substring of a role, and not without it (read:analytics alone).
    for (const claims of [{ roles: ['report_admin_x'] }, { roles: ['viewer'] }, {}]) {
      const token = bearer(await hs({ sub: 'role-admin', ...claims }));
      await expectRefused(
        await call('/reports/export', { ...token, ...json }, { method: 'POST', body }),
        403,
      );
      await expectRefused(await call(`/reports/export/${job_id}`, token), 403);
    }
  });

  it('binds a team-bound token to its team on the schedule routes', async () => {
    const json = { 'content-type': 'application/json' };
    const t1 = bearer(await hs({ sub: 'scheduler-t1', scope: 'report_admin', team_id: 't1' }));
    const schedule = (filters: object, report_type = 'usage-summary') =>
      call(
        '/reports/export-schedules',
        { ...t1, ...json },
        {
          method: 'POST',
          body: JSON.stringify({ report_type, format: 'csv', cadence: 'daily', filters }),
        },
      );
    const other = await expectRefused(await schedule({ team_id: 't2' }), 403);
    expect(other.message).toMatch(/own team/);
    const logs = await expectRefused(await schedule({}, 'system-events'), 403);
    expect(logs.message).toMatch(/platform-wide/);
    // Its own team, named or implied, is allowed; the schedule is pinned to it.
    for (const filters of [{ team_id: 't1' }, {}]) {
      const res = await schedule(filters);
      expect(res.status).toBe(201);
      expect(await res.json()).toMatchObject({ filters: { team_id: 't1' } });
    }
  });

  it('accepts API keys with their scopes and team; unknown, revoked, expired and tampered keys get one identical 401', async () => {
    const reader = createKey(keysPath, { name: 'bi', scopes: ['read:analytics'], teamId: 't1' }).key;
    const writer = createKey(keysPath, { name: 'producer', scopes: ['write:events'] }).key;
    const expired = createKey(keysPath, {
      name: 'old',
      scopes: ['read:analytics'],
      expiresAt: new Date(Date.now() - 1000),
    }).key;
    const revoked = createKey(keysPath, { name: 'gone', scopes: ['read:analytics'] });
    const apiKey = (k: string) => ({ 'x-api-key': k });

    const ok = await call(SUMMARY, apiKey(reader));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ total_users: 2, active_users: 2, total_sessions: 2 });
    await expectRefused(await call(`${SUMMARY}&team_id=t2`, apiKey(reader)), 403);
    await expectRefused(await call(`${TIMESERIES}&team_id=t2`, apiKey(reader)), 403);
    await expectRefused(await call('/logs/system-events', apiKey(reader)), 403);
    await expectRefused(await call(SUMMARY, apiKey(writer)), 403);
    expect((await call('/events', apiKey(writer), { method: 'POST', body: '[]' })).status).toBe(202);

    expect((await call(SUMMARY, apiKey(revoked.key))).status).toBe(200);
    revokeKey(keysPath, revoked.record.id);
    const last = reader.at(-1) === 'A' ? 'B' : 'A';
    const bad = {
      unknown: `tally_${'0'.repeat(16)}_${'A'.repeat(43)}`,
      revoked: revoked.key,
      expired,
      'tampered secret': `${reader.slice(0, -1)}${last}`,
      'tampered id': reader.replace(/^tally_(.)/, (_m, c: string) => `tally_${c === 'a' ? 'b' : 'a'}`),
      malformed: 'not-a-key',
    };
    const bodies = new Set<string>();
    for (const [name, k] of Object.entries(bad)) {
      reports.length = 0;
      const res = await call(SUMMARY, apiKey(k));
      const body = await expectRefused(res, 401, k);
      bodies.add(JSON.stringify(body));
      expect(
        reports.map((r) => r.reason),
        name,
      ).toEqual(['api-key']);
      expect(JSON.stringify(reports), name).not.toContain(k.startsWith('tally_') ? k.slice(23) : k);
    }
    expect([...bodies]).toEqual([JSON.stringify({ error: 'Unauthorized', message: 'invalid API key' })]);
    // Both credentials at once are ambiguous: refused.
    await expectRefused(await call(SUMMARY, { ...apiKey(reader), ...bearer(await hs()) }), 401);
  });

  it('writes refusals that arrive while an earlier one is being written, without waiting for a third', async () => {
    // SelfLog used to leave a record queued during a write until the next record() call.
    const log = new SelfLog(engine.ch);
    const report = recordAuthFailures(log);
    report({ reason: 'expired', who: 'sub=first', address: '192.0.2.1', message: 'token expired' });
    report({
      reason: 'bad-signature',
      who: 'sub=second',
      address: '192.0.2.2',
      message: 'invalid token signature',
    });
    const admin = bearer(await hs());
    const deadline = Date.now() + 10_000;
    let found: string[] = [];
    while (Date.now() < deadline) {
      const res = await call('/logs/system-events?service=tally&limit=1000', admin);
      const { events } = (await res.json()) as { events: { message: string }[] };
      found = events.map((e) => e.message).filter((m) => /sub=(first|second)/.test(m));
      if (found.length === 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(found.sort()).toEqual([
      expect.stringMatching(/^\[auth-failed:bad-signature\].*who: sub=second; from: 192\.0\.2\.2$/),
      expect.stringMatching(/^\[auth-failed:expired\].*who: sub=first; from: 192\.0\.2\.1$/),
    ]);
  });

  it('records refused authentications as warning system logs of service tally, without the credential', async () => {
    // A SelfLog of its own: the app's one keeps one record per reason a minute, and the tests above already
    // spent this minute's "expired", "api-key" and "unknown-kid". Unique names tie each record to this test.
    const log = new SelfLog(engine.ch);
    const record = recordAuthFailures(log);
    const own = createApp({
      ch: engine.ch,
      sink: createDirectSink(engine.ch),
      logger: createLogger('silent'),
      auth: createAuthenticator({
        secret: SECRET,
        issuer: ISSUER,
        audience: AUDIENCE,
        jwks: new JwksCache({ url: idp.url }),
        keys: fileKeys(keysPath),
      }),
      onAuthFailure: record,
    });
    const tag = randomBytes(4).toString('hex');
    const sub = `mallory-${tag}`;
    const kid = `k-unknown-${tag}`;
    const keyId = randomBytes(8).toString('hex');
    const expired = await hs({ exp: now() - 3600, sub });
    const unknownKid = await signWith(await makeKey(kid), { iss: ISSUER, aud: AUDIENCE, sub: `eve-${tag}` });
    const badKey = `tally_${keyId}_${'A'.repeat(43)}`;
    await expectRefused(await own.request(SUMMARY, { headers: bearer(expired) }), 401, expired);
    await expectRefused(await own.request(SUMMARY, { headers: bearer(unknownKid) }), 401, unknownKid);
    await expectRefused(await own.request(SUMMARY, { headers: { 'x-api-key': badKey } }), 401, badKey);
    await log.flush();
    const res = await call(
      '/logs/system-events?service=tally&severity=warning&limit=1000',
      bearer(await hs()),
    );
    const { events } = (await res.json()) as {
      events: { message: string; severity: string; service: string }[];
    };
    const mine = events.filter((e) => e.message.includes(tag) || e.message.includes(`key=${keyId}`));
    expect(mine.map((e) => [e.severity, e.service])).toEqual([
      ['warning', 'tally'],
      ['warning', 'tally'],
      ['warning', 'tally'],
    ]);
    const messages = mine.map((e) => e.message);
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          new RegExp(`^\\[auth-failed:expired\\] .*who: sub=${sub} iss=\\S+; from: \\S+$`),
        ),
        expect.stringMatching(new RegExp(`^\\[auth-failed:unknown-kid\\] .*who: kid=${kid} sub=eve-${tag}`)),
      ]),
    );
    expect(messages.filter((m) => m.includes(`key=${keyId}`))).toEqual([
      expect.stringMatching(
        new RegExp(`^\\[auth-failed:api-key\\] .*who: key=${keyId} \\(unknown\\); from: `),
      ),
    ]);
    for (const m of events.map((e) => e.message)) {
      expect(m).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./); // no JWT
      expect(m).not.toMatch(/tally_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/); // no API key
      expect(m).not.toContain(SECRET);
    }
  });
});
