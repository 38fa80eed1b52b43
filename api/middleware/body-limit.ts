// Request bodies bounded per operation. A declared Content-Length over the operation's limit is refused before
// anything is read (and before authentication: it reads nothing); a body sent without a length (chunked) is
// counted as it streams in and refused at the limit, after authentication, so an anonymous caller never gets a
// byte of its body read. Any request whose body was not read to its end (refused, unauthenticated, or sent to an
// operation that takes none) is answered with `Connection: close`: Node would otherwise read the rest of it off
// the wire to reuse the connection, which is exactly the unbounded read the limit exists to stop.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { createMiddleware } from 'hono/factory';
import { PayloadTooLarge } from '../../core/errors.ts';
import { readBodyText } from '../body.ts';
import type { AppEnv } from '../env.ts';

/** The largest body of the JSON operations other than POST /events (an export or schedule request). */
export const JSON_BODY_BYTES = 64 * 1024;

/**
 * The most bytes each operation's body may have, keyed `METHOD /path` (the OpenAPI path). An operation not
 * listed takes no body: a declared one is 413.
 */
export type BodyLimits = Readonly<Record<string, number>>;

export function bodyLimitOf(limits: BodyLimits, method: string, path: string): number {
  return limits[`${method.toUpperCase()} ${path}`] ?? 0;
}

const hasBody = (req: Request) =>
  req.headers.has('transfer-encoding') || Number(req.headers.get('content-length') ?? '0') > 0;

// Set when the body was read to its end; anything else closes the connection after the answer.
const fullyRead = new WeakSet<Request>();

/** After the answer to a request whose body is left unread, what is still taken in before the socket goes. */
export const LINGER = { bytes: 1024 * 1024, ms: 1000 };
const lingering = new WeakSet<Socket>();

/**
 * Destroying a socket with unread bytes in its receive buffer sends a TCP reset, and a client still sending
 * loses the answer it has not read yet (it sees ECONNRESET instead of the 413). So, like a web server's
 * lingering close, Node's close after `Connection: close` becomes: half-close (FIN after the answer), discard
 * what still arrives for at most LINGER.bytes or LINGER.ms, then destroy. Only under @hono/node-server (its
 * `incoming` in c.env); app.request() in tests has no socket.
 */
function lingerBeforeClose(env: unknown): void {
  const socket = (env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket;
  if (!socket || lingering.has(socket)) return;
  lingering.add(socket);
  let closing = false;
  socket.destroySoon = () => {
    if (closing) return;
    closing = true;
    const destroy = () => socket.destroy();
    setTimeout(destroy, LINGER.ms).unref();
    let read = 0;
    socket.on('data', (d: Buffer) => {
      read += d.length;
      if (read > LINGER.bytes) destroy();
    });
    socket.once('end', destroy);
    socket.end();
    socket.resume();
  };
}

/** First in the chain (it reads nothing): a declared length over the limit is 413 at once. */
export function declaredBodyLimit(limits: BodyLimits) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const req = c.req.raw;
    try {
      const max = bodyLimitOf(limits, c.req.method, c.req.path);
      const declared = Number(c.req.header('content-length') ?? '');
      if (Number.isFinite(declared) && declared > max) {
        throw new PayloadTooLarge(
          max === 0 ? 'this operation takes no body' : `the body is larger than ${max} bytes`,
        );
      }
      await next();
    } finally {
      if (hasBody(req) && !fullyRead.has(req)) {
        c.res.headers.set('Connection', 'close');
        lingerBeforeClose(c.env);
      }
    }
  });
}

/**
 * After authentication: reads a JSON operation's body whole, at most its limit (413 past it), and hands it to
 * the validator through Hono's body cache. `streamed` operations read their bodies themselves (bounded too).
 */
export function bufferedBody(limits: BodyLimits, streamed: readonly string[] = []) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const key = `${c.req.method.toUpperCase()} ${c.req.path}`;
    const max = limits[key];
    if (max !== undefined && !streamed.includes(key)) {
      const text = await readBodyText(c.req.raw, max);
      fullyRead.add(c.req.raw);
      // Hono keeps promises in its body cache (typed as the values); c.req.json() then parses this text.
      (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
    } else if (max !== undefined) {
      // Read by the handler (bounded by it); once it returns without throwing, the body was read to its end.
      await next();
      if (c.res.status < 400) fullyRead.add(c.req.raw);
      return;
    }
    await next();
  });
}
