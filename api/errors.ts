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

function isUnavailable(err: unknown): boolean {
  if (err instanceof Unavailable) return true;
  const e = err as { code?: unknown; message?: unknown; cause?: unknown };
  if (typeof e?.code === 'string' && UNAVAILABLE_CODES.has(e.code)) return true;
  if (
    typeof e?.message === 'string' &&
    /socket hang up|Timeout error|ChdbConnection is closed|No active connection available/i.test(e.message)
  ) {
    return true;
  }
  return e?.cause !== undefined && e.cause !== err && isUnavailable(e.cause);
}

export function createErrorHandler(logger: Logger) {
  return (err: Error, c: Context): Response => {
    if (err instanceof ValidationError) return jsonError(c, 400, err.message);
    if (err instanceof Unauthenticated) {
      return jsonError(c, 401, err.message, { 'WWW-Authenticate': 'Bearer realm="tally"' });
    }
    if (err instanceof Forbidden) return jsonError(c, 403, err.message);
    if (err instanceof NotFound) return jsonError(c, 404, err.message);
    if (err instanceof PayloadTooLarge) return jsonError(c, 413, err.message);
    if (err instanceof RateLimited) {
      return jsonError(c, 429, err.message, { 'Retry-After': String(err.retryAfterSeconds) });
    }
    if (err instanceof HTTPException) {
      const status = err.status as ContentfulStatusCode;
      return jsonError(c, status, err.message || STATUS_NAMES[status] || 'error');
    }
    const requestId = c.get('requestId' as never) as string | undefined;
    if (isUnavailable(err)) {
      logger.warn({ err, requestId }, 'storage unavailable');
      return jsonError(c, 503, 'the storage is not answering; try again shortly', { 'Retry-After': '5' });
    }
    logger.error({ err, requestId, path: c.req.path }, 'unhandled error');
    return jsonError(c, 500, `an unexpected error occurred (request id ${requestId ?? 'unknown'})`);
  };
}
