// GET /docs: Swagger UI over /openapi.json, served from the swagger-ui-dist package (no CDN), so the page works
// offline and under a CSP that allows this origin's files only. swagger-ui-dist is pinned at 5.17.14, the last
// release without a telemetry dependency that runs an install script.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { NotFound } from '../../core/errors.ts';
import type { AppEnv } from '../env.ts';
import { errorResponses } from '../params.ts';
import { pagePolicy } from '../security-headers.ts';

const DIST = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

// Only these names are served (never a path from the request), read once on first use.
const ASSETS: Record<string, { type: string; file?: string; text?: string }> = {
  'swagger-ui.css': { type: 'text/css; charset=utf-8', file: 'swagger-ui.css' },
  'swagger-ui-bundle.js': { type: 'text/javascript; charset=utf-8', file: 'swagger-ui-bundle.js' },
  // The start-up script, a file of its own: the page's CSP has no inline script.
  'init.js': {
    type: 'text/javascript; charset=utf-8',
    text:
      "const root = document.getElementById('swagger-ui');\n" +
      "window.ui = SwaggerUIBundle({ url: root.dataset.url, dom_id: '#swagger-ui', deepLinking: true });\n",
  },
};
const cache = new Map<string, Buffer>();
function asset(name: string): Buffer | undefined {
  const a = ASSETS[name];
  if (!a) return undefined;
  let body = cache.get(name);
  if (!body) {
    body = a.text !== undefined ? Buffer.from(a.text) : readFileSync(join(DIST, a.file ?? name));
    cache.set(name, body);
  }
  return body;
}

export const DOCS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tally API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head><body><div id="swagger-ui" data-url="/openapi.json"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body></html>`;

// Swagger UI sets style attributes on its elements, which only 'unsafe-inline' allows; scripts stay 'self'.
const DOCS_POLICY = pagePolicy(DOCS_PAGE, { scriptSrc: ["'self'"], styleSrc: ["'self'", "'unsafe-inline'"] });

const page = createRoute({
  method: 'get',
  path: '/docs',
  summary: 'Interactive API documentation (Swagger UI) over /openapi.json (no auth)',
  responses: { 200: { description: 'An HTML page', content: { 'text/html': { schema: z.string() } } } },
});

const file = createRoute({
  method: 'get',
  path: '/docs/{file}',
  summary: "The documentation page's own files: swagger-ui.css, swagger-ui-bundle.js, init.js (no auth)",
  request: {
    params: z.object({
      file: z
        .string()
        .max(64)
        .openapi({ param: { name: 'file', in: 'path' }, example: 'swagger-ui.css' }),
    }),
  },
  responses: {
    200: {
      description: 'The file',
      content: { 'text/css': { schema: z.string() }, 'text/javascript': { schema: z.string() } },
    },
    ...errorResponses(404),
  },
});

export function docsRoutes() {
  const app = new OpenAPIHono<AppEnv>();
  for (const r of [page, file]) app.openAPIRegistry.registerPath(r);
  app.get('/docs', (c) => {
    c.header('Content-Security-Policy', DOCS_POLICY);
    return c.html(DOCS_PAGE);
  });
  app.get('/docs/:file', (c) => {
    const name = c.req.param('file');
    const body = asset(name);
    if (!body) throw new NotFound(`no documentation file ${name}`);
    c.header('Content-Type', ASSETS[name]?.type ?? 'application/octet-stream');
    c.header('Cache-Control', 'public, max-age=86400');
    return c.body(new Uint8Array(body), 200);
  });
  return app;
}
