// Unauthenticated service routes beyond health: Prometheus metrics, the OpenAPI document, the interactive API
// docs, and the static start page that asks for a token. None of them shows tenant data. Also the completion
// of the OpenAPI document with what the app does around every route (headers, 413, 404 and 405).

import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '../env.ts';
import { STATUS_NAMES } from '../errors.ts';
import { metricsText } from '../metrics.ts';
import { type BodyLimits, bodyLimitOf } from '../middleware/body-limit.ts';
import { pagePolicy } from '../security-headers.ts';
import { START_PAGE } from './start-page.ts';

// The start page's own inline script and style, allowed by hash; it calls this origin's API only.
const START_PAGE_POLICY = pagePolicy(START_PAGE);

const text = (description: string, type: string) => ({
  description,
  content: { [type]: { schema: z.string() } },
});

const metrics = createRoute({
  method: 'get',
  path: '/metrics',
  summary: 'Prometheus metrics: request counts and latency by route pattern and status (no auth)',
  responses: { 200: text('Prometheus text exposition format', 'text/plain') },
});

const openapi = createRoute({
  method: 'get',
  path: '/openapi.json',
  summary: 'This OpenAPI 3.1 document (no auth)',
  responses: {
    200: {
      description: 'The document',
      content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } },
    },
  },
});

const start = createRoute({
  method: 'get',
  path: '/',
  summary: 'A static start page that asks for a token and tries the reports (no auth)',
  responses: { 200: text('An HTML page', 'text/html') },
});

/** `document` returns the app's whole OpenAPI document (built by createApp once every route is mounted). */
export function metaRoutes(document: () => object | undefined) {
  const app = new OpenAPIHono<AppEnv>();
  for (const r of [metrics, openapi, start]) app.openAPIRegistry.registerPath(r);
  app.get('/metrics', async (c) => {
    const m = await metricsText();
    c.header('Content-Type', m.contentType);
    return c.body(m.body, 200);
  });
  app.get('/openapi.json', (c) => {
    const doc = document();
    if (doc === undefined) throw new Error('the OpenAPI document is not built yet');
    return c.json(doc);
  });
  app.get('/', (c) => {
    c.header('Content-Security-Policy', START_PAGE_POLICY);
    return c.html(START_PAGE);
  });
  return app;
}

// --- Completing the document ---------------------------------------------------------------------------------
// Route files describe their own parameters, bodies and answers. What the app does around all of them is stated
// here, once, from the same facts the middleware acts on: api/middleware/request-id.ts (X-Request-Id on every
// response), api/middleware/rate-limit.ts (RateLimit-* once the caller is authenticated), api/errors.ts (401
// with WWW-Authenticate, 429 and 503 with Retry-After), api/app.ts (a declared body over the limit is 413 on
// any route; unknown paths 404 and other methods 405 with Allow, before authentication).

interface HeaderObject {
  description?: string;
  required?: boolean;
  schema: Record<string, unknown>;
}
interface ResponseObject {
  description: string;
  headers?: Record<string, HeaderObject>;
  content?: Record<string, unknown>;
}
interface OperationObject {
  security?: Array<Record<string, string[]>>;
  responses?: Record<string, ResponseObject>;
}
interface Document {
  paths?: Record<string, Record<string, OperationObject>>;
  components?: { schemas?: Record<string, unknown>; responses?: Record<string, ResponseObject> };
}

const header = (description: string, schema: Record<string, unknown>, required = true): HeaderObject => ({
  description,
  required,
  schema,
});

const REQUEST_ID = header(
  "The request id: the caller's own X-Request-Id if it is a sane token, else a new UUID",
  {
    type: 'string',
    pattern: '^[A-Za-z0-9._:-]{1,128}$',
  },
);
const RETRY_AFTER = header('Seconds to wait before retrying', { type: 'integer', minimum: 0 });
// /clickhouse challenges with Basic first (ClickHouse clients answer a Basic challenge), then Bearer: the
// pattern takes a Bearer challenge first or after another, not a value that merely starts with Bearer.
const WWW_AUTHENTICATE = header(
  'The schemes to authenticate with: Bearer (on /clickhouse, Basic and Bearer)',
  {
    type: 'string',
    pattern: '(^|, )Bearer( |$)',
  },
);
const ALLOW = header('The methods this path serves', { type: 'string' });

const rateLimitHeaders = (required: boolean): Record<string, HeaderObject> => ({
  'RateLimit-Limit': header(
    'Requests this identity may make in any 60-second window',
    { type: 'integer', minimum: 1 },
    required,
  ),
  'RateLimit-Remaining': header(
    'Requests left in the current window',
    { type: 'integer', minimum: 0 },
    required,
  ),
  'RateLimit-Reset': header(
    'Seconds until the window frees a request',
    { type: 'integer', minimum: 0 },
    required,
  ),
});

// Answers given after the rate limiter has counted the request, so they always carry RateLimit-*. A 500 or 503
// may come from authentication itself (an IdP or a Redis that does not answer), a 413 from the declared length
// before authentication: those carry them only sometimes. A 401 never does (nobody to count against).
const COUNTED = /^(2\d\d|400|403|404|429)$/;

// Headers particular to one operation, which its route declares no schema for.
const OPERATION_HEADERS: Record<string, Record<string, Record<string, HeaderObject>>> = {
  'get /logs/system-events': {
    '200': {
      'X-Page': header('CSV answers: the page served', { type: 'integer', minimum: 1 }, false),
      'X-Total-Pages': header('CSV answers: total_pages', { type: 'integer', minimum: 0 }, false),
      'X-Next-Cursor': header('CSV answers: next_cursor, when more pages follow', { type: 'string' }, false),
    },
  },
};

export interface CompletionOptions {
  /** A rate limiter is installed: authenticated answers carry RateLimit-*. */
  rateLimited: boolean;
  /** The body each operation takes, in bytes (api/middleware/body-limit.ts); one not listed takes none. */
  bodyLimits: BodyLimits;
}

function errorResponse(doc: Document, status: number, description: string): ResponseObject {
  const schema = doc.components?.schemas?.Error
    ? { $ref: '#/components/schemas/Error' }
    : { type: 'object', required: ['error', 'message'] };
  return {
    description: `${STATUS_NAMES[status]}: ${description}`,
    content: { 'application/json': { schema } },
  };
}

/** A copy of the generated document with the app-wide headers and answers added to every operation. */
export function completeDocument<T extends object>(generated: T, opts: CompletionOptions): T {
  const doc = structuredClone(generated) as Document;
  for (const [path, operations] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(operations)) {
      const responses = op.responses ?? {};
      const max = bodyLimitOf(opts.bodyLimits, method, path);
      const tooLarge =
        max === 0
          ? 'this operation takes no body, and the request declares one (the connection is closed)'
          : `the body is over ${max} bytes, declared or as it streams in (the connection is closed)`;
      responses['413'] ??= errorResponse(doc, 413, tooLarge);
      const secured = (op.security ?? []).some((s) => Object.keys(s).length > 0);
      for (const [status, response] of Object.entries(responses)) {
        const headers: Record<string, HeaderObject> = { 'X-Request-Id': REQUEST_ID };
        if (status === '401') headers['WWW-Authenticate'] = WWW_AUTHENTICATE;
        if (status === '429' || status === '503') headers['Retry-After'] = RETRY_AFTER;
        if (secured && opts.rateLimited && status !== '401') {
          Object.assign(headers, rateLimitHeaders(COUNTED.test(status)));
        }
        Object.assign(headers, OPERATION_HEADERS[`${method} ${path}`]?.[status], response.headers);
        response.headers = headers;
      }
      op.responses = responses;
    }
  }
  doc.components ??= {};
  doc.components.responses = {
    ...doc.components.responses,
    NotFound: {
      ...errorResponse(doc, 404, 'no such path (answered before authentication)'),
      headers: { 'X-Request-Id': REQUEST_ID },
    },
    MethodNotAllowed: {
      ...errorResponse(doc, 405, 'the path exists but not with this method (answered before authentication)'),
      headers: { 'X-Request-Id': REQUEST_ID, Allow: ALLOW },
    },
  };
  return doc as T;
}
