// `npm run keys -- create --name N --scopes "read:analytics" [--team T] [--expires 2027-01-01]`, `keys list`,
// `keys revoke ID`: API keys for services, kept hashed in the control store. While the service runs it owns the
// embedded store, so the CLI goes through it (/admin/keys, with a short-lived keys:admin token signed by the
// service's secret); with DATABASE_URL, or when no service answers, it opens the store itself. The key is
// printed once at creation; a running API sees every change at its next request.
import { parseArgs } from 'node:util';
import { insertKey, listKeys, revokeKey } from '../control/keys.ts';
import {
  type ApiKeyRecord,
  checkNewKey,
  isKeyId,
  type NewKey,
  newKey,
  unusableReason,
} from '../core/api-keys.ts';
import { handleHelp } from '../core/cli.ts';
import { KEYS_ADMIN_SCOPE, loadOrCreateSecret, mintToken } from '../core/tokens.ts';
import { configOrExit, createLogger, openControlStore, orExit } from './runtime.ts';

const usage = `usage:
  npm run keys -- create --name NAME --scopes "read:analytics write:events" [--team TEAM] [--expires YYYY-MM-DD|RFC3339]
  npm run keys -- list [--json]
  npm run keys -- revoke KEY_ID`;
handleHelp(usage);

function fail(message: string): never {
  process.stderr.write(`${message}\n${usage}\n`);
  process.exit(2);
}

let parsed: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      scopes: { type: 'string' },
      team: { type: 'string' },
      expires: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
}
try {
  parsed = parse();
} catch (err) {
  fail((err as Error).message);
}
const { values, positionals } = parsed;
const [command, ...rest] = positionals;
const config = configOrExit();

/** The three operations, through the running service or on the store directly. */
interface Keys {
  list(): Promise<Omit<ApiKeyRecord, 'secret_sha256'>[]>;
  create(spec: NewKey): Promise<{ key: string; id: string; name: string }>;
  revoke(id: string): Promise<boolean>;
  close(): Promise<void>;
}

async function viaService(): Promise<Keys | undefined> {
  if (config.control.databaseUrl) return undefined;
  const base = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`;
  const secret = loadOrCreateSecret(config.dataDir, config.auth.jwtSecret);
  const token = await mintToken(secret.value, {
    sub: 'keys-cli',
    scope: KEYS_ADMIN_SCOPE,
    ttlSeconds: 60,
    issuer: config.auth.issuer,
    audience: config.auth.audience,
  });
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    if (res.status >= 400 && res.status !== 404) {
      const e = (await res.json().catch(() => ({}))) as { message?: string };
      throw new Error(`the service at ${base} answered ${res.status}: ${e.message ?? ''}`);
    }
    return res;
  };
  try {
    await fetch(`${base}/healthz`);
  } catch {
    return undefined; // no service: the store is free
  }
  return {
    list: async () => ((await (await call('GET', '/admin/keys')).json()) as { keys: ApiKeyRecord[] }).keys,
    create: async (spec) => {
      const res = await call('POST', '/admin/keys', {
        name: spec.name,
        scopes: spec.scopes,
        ...(spec.teamId !== undefined ? { team_id: spec.teamId } : {}),
        ...(spec.expiresAt ? { expires_at: spec.expiresAt.toISOString() } : {}),
      });
      const made = (await res.json()) as { key: string; record: ApiKeyRecord };
      return { key: made.key, id: made.record.id, name: made.record.name };
    },
    revoke: async (id) => (await call('POST', `/admin/keys/${id}/revoke`)).status === 204,
    close: async () => undefined,
  };
}

async function direct(): Promise<Keys> {
  const db = await orExit(config, () => openControlStore(config, createLogger('silent')));
  return {
    list: async () => (await listKeys(db)).map(({ secret_sha256: _h, ...r }) => r),
    create: async (spec) => {
      for (;;) {
        const made = newKey(spec);
        if (await insertKey(db, made.record))
          return { key: made.key, id: made.record.id, name: made.record.name };
      }
    },
    revoke: (id) => revokeKey(db, id, new Date().toISOString()),
    close: () => db.close(),
  };
}

const keys = (await viaService()) ?? (await direct());
try {
  if (command === 'create') {
    if (rest.length > 0) fail(`unexpected argument ${rest[0]}`);
    if (!values.name) fail('--name is required');
    let expiresAt: Date | undefined;
    if (values.expires !== undefined) {
      expiresAt = new Date(values.expires);
      if (Number.isNaN(expiresAt.getTime())) fail('--expires: expected YYYY-MM-DD or an RFC 3339 instant');
    }
    const spec = {
      name: values.name,
      scopes: (values.scopes ?? '').split(' ').filter(Boolean),
      ...(values.team !== undefined ? { teamId: values.team } : {}),
      ...(expiresAt ? { expiresAt } : {}),
    };
    const problems = checkNewKey(spec);
    if (problems.length > 0) fail(problems.join('\n'));
    const made = await keys.create(spec);
    process.stderr.write(`created key ${made.id} (${made.name}); it is shown once, store it now:\n`);
    process.stdout.write(`${made.key}\n`);
  } else if (command === 'list') {
    const now = Date.now();
    const list = (await keys.list()).map((r) => ({
      ...r,
      status: unusableReason(r as ApiKeyRecord, now) ?? 'active',
    }));
    if (values.json) {
      process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
    } else {
      for (const k of list) {
        process.stdout.write(
          `${k.id}  ${k.status.padEnd(7)}  ${k.name}  scopes=${k.scopes.join(' ')}  team=${k.team_id ?? '*'}  ` +
            `created=${k.created_at}  expires=${k.expires_at ?? 'never'}\n`,
        );
      }
      if (list.length === 0) process.stderr.write('no keys\n');
    }
  } else if (command === 'revoke') {
    const id = rest[0];
    if (!id || !isKeyId(id)) fail('revoke needs a key id (16 hex digits, as `keys list` shows)');
    if (!(await keys.revoke(id))) {
      process.stderr.write(`no key ${id}\n`);
      process.exitCode = 1;
    } else process.stderr.write(`revoked key ${id}\n`);
  } else {
    fail(command ? `unknown command ${command}` : 'a command is required');
  }
} catch (err) {
  process.stderr.write(`tally: ${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await keys.close();
}
