// The one mapping from errors to the contract's JSON: {"error": "<standard name>", "message": "<for a person>"}.
// Unknown errors are logged with the request id and answered as a bare 500: no stack, no SQL, no internals.
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import {
  Forbidden,
  NotFound,
  PayloadTooLarge,
  RateLimited,
  Unauthenticated,
  Unavailable,
  ValidationError,
} from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';

export const STATUS_NAMES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function errorBody(status: number, message: string): { error: string; message: string } {
  return { error: STATUS_NAMES[status] ?? 'Error', message };
}

export function jsonError(
  c: Context,
  status: ContentfulStatusCode,
  message: string,
  headers: Record<string, string> = {},
): Response {
  for (const [k, v] of Object.entries(headers)) c.header(k, v);
  return c.json(errorBody(status, message), status);
}

// Errors of the network or the engine's availability, as opposed to a bad query.
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
]);

/** Follows an error's `cause` chain (bounded: a cycle ends it). */
function* causes(err: unknown): Generator<unknown> {
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    yield e;
    const next = (e as { cause?: unknown }).cause;
    if (next === e) return;
    e = next;
  }
}

/**
 * The storage took longer than the API gives it: the client's request timeout ran out (a server that accepts
 * and never answers), or the server stopped the query at max_execution_time (ClickHouse error 159,
 * TIMEOUT_EXCEEDED). See readClient in clickhouse/client.ts.
 */
export function isStorageTimeout(err: unknown): boolean {
  for (const e of causes(err)) {
    const x = e as { code?: unknown; type?: unknown; message?: unknown };
    if (x.type === 'TIMEOUT_EXCEEDED' || x.code === '159' || x.code === 'ETIMEDOUT') return true;
    if (typeof x.message === 'string' && /^Timeout error\b/.test(x.message)) return true;
  }
  return false;
}

function isUnavailable(err: unknown): boolean {
  for (const e of causes(err)) {
    if (e instanceof Unavailable) return true;
    const x = e as { code?: unknown; message?: unknown };
    if (typeof x.code === 'string' && UNAVAILABLE_CODES.has(x.code)) return true;
    if (
      typeof x.message === 'string' &&
      /socket hang up|ChdbConnection is closed|No active connection available/i.test(x.message)
    ) {
      return true;
    }
  }
  return false;
}

/** Seconds a client is asked to wait after a 503. */
export const RETRY_AFTER_UNAVAILABLE_SECONDS = 5;

export function createErrorHandler(logger: Logger) {
  return (err: Error, c: Context): Response => {
    if (err instanceof ValidationError) return jsonError(c, 400, err.message);
    if (err instanceof Unauthenticated) {
      return jsonError(c, 401, err.message, { 'WWW-Authenticate': 'Bearer realm="tally"' });
    }
    if (err instanceof Forbidden) return jsonError(c, 403, err.message);
    if (err instanceof NotFound) return jsonError(c, 404, err.message);
    // The rest of a refused body is never read: the connection is closed after the answer instead.
    if (err instanceof PayloadTooLarge) return jsonError(c, 413, err.message, { Connection: 'close' });
    if (err instanceof RateLimited) {
      return jsonError(c, 429, err.message, { 'Retry-After': String(err.retryAfterSeconds) });
    }
    if (err instanceof HTTPException) {
      const status = err.status as ContentfulStatusCode;
      return jsonError(c, status, err.message || STATUS_NAMES[status] || 'error');
    }
    const requestId = c.get('requestId' as never) as string | undefined;
    const retryAfter = { 'Retry-After': String(RETRY_AFTER_UNAVAILABLE_SECONDS) };
    if (isStorageTimeout(err)) {
      logger.warn({ err, requestId, path: c.req.path }, 'storage timed out');
      return jsonError(c, 503, 'the storage did not answer in time; try again shortly', retryAfter);
    }
    // A domain Unavailable says itself what is away (the storage, or the Kafka broker of POST /events).
    if (err instanceof Unavailable) {
      logger.warn({ err, requestId }, 'unavailable');
      return jsonError(c, 503, err.message, retryAfter);
    }
    if (isUnavailable(err)) {
      logger.warn({ err, requestId }, 'storage unavailable');
      return jsonError(c, 503, 'the storage is not answering; try again shortly', retryAfter);
    }
    logger.error({ err, requestId, path: c.req.path }, 'unhandled error');
    return jsonError(c, 500, `an unexpected error occurred (request id ${requestId ?? 'unknown'})`);
  };
}
