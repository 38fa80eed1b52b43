// API keys, administered through the running service (scope keys:admin, which no other scope implies): what
// `npm run keys` calls, so that it works while the service owns the embedded control store.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Sql } from '../../control/db.ts';
import { insertKey, listKeys, revokeKey } from '../../control/keys.ts';
import { type ApiKeyRecord, checkNewKey, isKeyId, newKey } from '../../core/api-keys.ts';
import { NotFound, ValidationError } from '../../core/errors.ts';
import { KEYS_ADMIN_SCOPE } from '../../core/tokens.ts';
import type { AppEnv } from '../env.ts';
import { requireScope } from '../middleware/auth.ts';
import { errorResponses, SECURITY } from '../params.ts';
import { validationHook } from '../validation.ts';

const KeyInfo = z
  .object({
    id: z.string(),
    name: z.string(),
    scopes: z.array(z.string()),
    team_id: z.string().optional(),
    created_at: z.string(),
    expires_at: z.string().optional(),
    revoked_at: z.string().optional(),
  })
  .openapi('ApiKey');

const show = ({ secret_sha256: _hash, ...r }: ApiKeyRecord) => r;

const listRoute = createRoute({
  method: 'get',
  path: '/admin/keys',
  summary: 'The API keys (never their secrets); scope keys:admin',
  security: SECURITY,
  middleware: [requireScope(KEYS_ADMIN_SCOPE)] as const,
  responses: {
    200: {
      description: 'The keys',
      content: { 'application/json': { schema: z.object({ keys: z.array(KeyInfo) }) } },
    },
    ...errorResponses(401, 403, 429, 500, 503),
  },
});

const createKeyRoute = createRoute({
  method: 'post',
  path: '/admin/keys',
  summary: 'Create an API key; the key is in this answer only; scope keys:admin',
  security: SECURITY,
  middleware: [requireScope(KEYS_ADMIN_SCOPE)] as const,
  request: {
    body: {
      content: {
        'application/json': {
          schema: z.strictObject({
            name: z.string(),
            scopes: z.array(z.string()),
            team_id: z.string().optional(),
            expires_at: z.string().optional(),
          }),
        },
      },
      required: true,
    },
  },
  responses: {
    201: {
      description: 'Created',
      content: { 'application/json': { schema: z.object({ key: z.string(), record: KeyInfo }) } },
    },
    ...errorResponses(400, 401, 403, 413, 429, 500, 503),
  },
});

const revokeRoute = createRoute({
  method: 'post',
  path: '/admin/keys/{id}/revoke',
  summary: 'Revoke an API key (kept, shown as revoked); scope keys:admin',
  security: SECURITY,
  middleware: [requireScope(KEYS_ADMIN_SCOPE)] as const,
  request: { params: z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) }) },
  responses: { 204: { description: 'Revoked' }, ...errorResponses(400, 401, 403, 404, 429, 500, 503) },
});

export function adminKeyRoutes(db: Sql) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(listRoute, async (c) => c.json({ keys: (await listKeys(db)).map(show) }, 200));
  app.openapi(createKeyRoute, async (c) => {
    const body = c.req.valid('json');
    const expiresAt = body.expires_at !== undefined ? new Date(body.expires_at) : undefined;
    if (expiresAt && Number.isNaN(expiresAt.getTime())) {
      throw new ValidationError('expires_at', 'expected YYYY-MM-DD or an RFC 3339 instant');
    }
    const spec = {
      name: body.name,
      scopes: body.scopes,
      ...(body.team_id !== undefined ? { teamId: body.team_id } : {}),
      ...(expiresAt ? { expiresAt } : {}),
    };
    const problems = checkNewKey(spec);
    if (problems.length > 0) throw new ValidationError('body', problems.join('; '));
    for (;;) {
      const made = newKey(spec);
      // A random 64-bit id taken already: draw another.
      if (await insertKey(db, made.record)) return c.json({ key: made.key, record: show(made.record) }, 201);
    }
  });
  app.openapi(revokeRoute, async (c) => {
    const { id } = c.req.valid('param');
    if (!isKeyId(id)) throw new ValidationError('id', 'a key id is 16 hex digits');
    if (!(await revokeKey(db, id, new Date().toISOString()))) throw new NotFound(`no API key ${id}`);
    return c.body(null, 204);
  });
  return app;
}
