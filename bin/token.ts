// `npm run token -- --sub U [--scope "read:analytics report_admin"] [--team T] [--ttl 3600]`: prints a signed
// JWT for the configured (or first-start generated) secret. For development; production tokens come from the IdP.
import { parseArgs } from 'node:util';
import { handleHelp } from '../core/cli.ts';
import { ALL_SCOPES, loadOrCreateSecret, mintToken } from '../core/tokens.ts';
import { configOrExit } from './runtime.ts';

const usage =
  'usage: npm run token -- --sub USER [--scope "read:analytics report_admin"] [--team TEAM] [--ttl SECONDS]';
handleHelp(
  `${usage}\n\nPrints a signed JWT (HS256) for the configured AUTH_JWT_SECRET or the secret generated in DATA_DIR.\n  --sub USER     the subject (required)\n  --scope LIST   space-separated scopes (default all: read:analytics write:events report_admin)\n  --team TEAM    bind the token to one team (team_id claim)\n  --ttl SECONDS  lifetime (default 3600)`,
);
let values: { sub?: string; scope?: string; team?: string; ttl?: string };
try {
  ({ values } = parseArgs({
    options: {
      sub: { type: 'string' },
      scope: { type: 'string' },
      team: { type: 'string' },
      ttl: { type: 'string' },
    },
  }));
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${usage}\n`);
  process.exit(2);
}
if (!values.sub) {
  process.stderr.write(`--sub is required\n${usage}\n`);
  process.exit(2);
}
const ttl = values.ttl === undefined ? 3600 : Number(values.ttl);
if (!Number.isInteger(ttl) || ttl < 1) {
  process.stderr.write(`--ttl must be a positive number of seconds\n${usage}\n`);
  process.exit(2);
}
const config = configOrExit();
const secret = loadOrCreateSecret(config.dataDir, config.auth.jwtSecret);
const token = await mintToken(secret.value, {
  sub: values.sub,
  scope: values.scope ?? ALL_SCOPES.join(' '),
  team_id: values.team,
  ttlSeconds: ttl,
  issuer: config.auth.issuer,
  audience: config.auth.audience,
});
process.stdout.write(`${token}\n`);
