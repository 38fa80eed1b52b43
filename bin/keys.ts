// `npm run keys -- create --name N --scopes "read:analytics" [--team T] [--expires 2027-01-01]`, `keys list`,
// `keys revoke ID`: API keys for services in API_KEYS_FILE (default DATA_DIR/api-keys.json). The key is printed
// once at creation; the file keeps only its hash. A running API sees changes within about a second.
import { parseArgs } from 'node:util';
import { checkNewKey, createKey, isKeyId, readKeys, revokeKey, unusableReason } from '../core/api-keys.ts';
import { handleHelp } from '../core/cli.ts';
import { configOrExit } from './runtime.ts';

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
const path = configOrExit().security.apiKeysPath;

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
  const { key, record } = createKey(path, spec);
  process.stderr.write(
    `created key ${record.id} (${record.name}) in ${path}; it is shown once, store it now:\n`,
  );
  process.stdout.write(`${key}\n`);
} else if (command === 'list') {
  const now = Date.now();
  const keys = readKeys(path).map(({ secret_sha256: _hash, ...r }) => ({
    ...r,
    status: unusableReason(r as Parameters<typeof unusableReason>[0], now) ?? 'active',
  }));
  if (values.json) {
    process.stdout.write(`${JSON.stringify(keys, null, 2)}\n`);
  } else {
    for (const k of keys) {
      process.stdout.write(
        `${k.id}  ${k.status.padEnd(7)}  ${k.name}  scopes=${k.scopes.join(' ')}  team=${k.team_id ?? '*'}  ` +
          `created=${k.created_at}  expires=${k.expires_at ?? 'never'}\n`,
      );
    }
    if (keys.length === 0) process.stderr.write(`no keys in ${path}\n`);
  }
} else if (command === 'revoke') {
  const id = rest[0];
  if (!id || !isKeyId(id)) fail('revoke needs a key id (16 hex digits, as `keys list` shows)');
  if (!revokeKey(path, id)) {
    process.stderr.write(`no key ${id} in ${path}\n`);
    process.exit(1);
  }
  process.stderr.write(`revoked key ${id}\n`);
} else {
  fail(command ? `unknown command ${command}` : 'a command is required');
}
