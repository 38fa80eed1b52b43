// GET /schemas/<name>.json: the event schema as JSON Schema files (generated from the zod source, the same as
// schemas/*.json in the repository), without credentials, for producers that validate before sending.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { eventJsonSchemas, SCHEMA_NAMES, schemaFileText } from '../../core/event-schemas.ts';
import type { AppEnv } from '../env.ts';
import { jsonError } from '../errors.ts';
import { errorResponses } from '../params.ts';

const FILES = SCHEMA_NAMES.map((n) => `${n}.json`) as [string, ...string[]];

const route = createRoute({
  method: 'get',
  path: '/schemas/{name}',
  summary: 'The event schema as JSON Schema (no auth): event.json, usage-event.json, log-event.json',
  request: {
    params: z.object({
      name: z.enum(FILES).openapi({ param: { name: 'name', in: 'path' }, example: 'usage-event.json' }),
    }),
  },
  responses: {
    200: {
      description: 'A JSON Schema (draft 2020-12) document',
      content: { 'application/schema+json': { schema: z.record(z.string(), z.unknown()) } },
    },
    ...errorResponses(400),
  },
});

export function schemaRoutes() {
  const app = new OpenAPIHono<AppEnv>();
  const files = new Map(Object.entries(eventJsonSchemas()).map(([n, s]) => [`${n}.json`, schemaFileText(s)]));
  app.openAPIRegistry.registerPath(route);
  app.get('/schemas/:name', (c) => {
    const text = files.get(c.req.param('name'));
    // Like any parameter out of its set: a 400 naming it (the path itself exists).
    if (text === undefined) return jsonError(c, 400, `name: must be one of ${FILES.join(', ')}`);
    c.header('Content-Type', 'application/schema+json');
    c.header('Cache-Control', 'public, max-age=300');
    return c.body(text, 200);
  });
  return app;
}
