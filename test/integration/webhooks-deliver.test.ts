// One webhook attempt against local sockets: the timeout bounds the whole attempt, so a receiver that keeps the
// connection busy with a byte now and then (which an idle timeout never fires on) is cut off all the same, and
// a receiver that accepts but never finishes its body does not keep the socket open past the limit.
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebhookAllowList } from '../../core/webhooks/allow-list.ts';
import { postWebhook } from '../../worker/webhooks/deliver.ts';

/** A raw TCP receiver: `onConnection` writes whatever (slow) bytes the test wants. */
async function rawReceiver(onConnection: (socket: Socket) => void) {
  const sockets: Socket[] = [];
  const closed: number[] = [];
  const server: Server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => closed.push(Date.now()));
    onConnection(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    closed,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Writes `text` one byte every `everyMs` (never the end of it if `text` never ends the message). */
function trickle(socket: Socket, text: string, everyMs: number): void {
  let i = 0;
  const t = setInterval(() => {
    if (socket.destroyed || i >= text.length) return clearInterval(t);
    socket.write(text[i] as string);
    i += 1;
  }, everyMs);
  socket.on('close', () => clearInterval(t));
}

describe('postWebhook time limit', () => {
  const open: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of open.splice(0)) await close();
  });

  it('cuts off a receiver that trickles its answer head byte by byte, at the overall limit', async () => {
    const rx = await rawReceiver((s) => {
      s.once('data', () => trickle(s, `HTTP/1.1 200 OK\r\nX-Slow: ${'y'.repeat(500)}\r\n\r\n`, 40));
    });
    open.push(rx.close);
    const allow = new WebhookAllowList([`127.0.0.1:${rx.port}`]);
    const started = Date.now();
    const r = await postWebhook(allow, `http://127.0.0.1:${rx.port}/hook`, '{}', {}, 500);
    const took = Date.now() - started;
    expect(r).toEqual({ ok: false, retry: true, reason: 'no answer within 500 ms' });
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(5000); // an idle timeout would wait about 20 s for these 500 bytes
    await expect.poll(() => rx.closed.length, { timeout: 5000 }).toBe(1);
  });

  it('counts a 2xx head as delivered, and closes a body that never ends at the limit', async () => {
    const rx = await rawReceiver((s) => {
      s.once('data', () => {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n');
        trickle(s, 'z'.repeat(100_000), 40);
      });
    });
    open.push(rx.close);
    const allow = new WebhookAllowList([`127.0.0.1:${rx.port}`]);
    const started = Date.now();
    const r = await postWebhook(allow, `http://127.0.0.1:${rx.port}/hook`, '{}', {}, 600);
    // Delivered on the head (a deadline would have made it a failure), long before the body could end.
    expect(r).toEqual({ ok: true, status: 200 });
    // The socket does not outlive the attempt's limit by much (the body alone would take over an hour).
    await expect.poll(() => rx.closed.length, { timeout: 5000 }).toBe(1);
    expect((rx.closed[0] ?? 0) - started).toBeLessThan(5000);
  });

  it('answers at once for a quick receiver, and never connects to a refused target', async () => {
    let connections = 0;
    const rx = await rawReceiver((s) => {
      connections += 1;
      s.once('data', () => s.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n'));
    });
    open.push(rx.close);
    const allow = new WebhookAllowList([`127.0.0.1:${rx.port}`]);
    expect(await postWebhook(allow, `http://127.0.0.1:${rx.port}/`, '{}', {}, 2000)).toEqual({
      ok: false,
      retry: true,
      status: 503,
      reason: 'answered 503',
    });
    // The same receiver written as an IPv4-compatible IPv6 address: refused before any connection.
    expect(await postWebhook(allow, `http://[::7f00:1]:${rx.port}/`, '{}', {}, 2000)).toMatchObject({
      ok: false,
      retry: false,
      reason: expect.stringMatching(/^webhook_url: host ::7f00:1:\d+ is not on WEBHOOK_ALLOWED_HOSTS$/),
    });
    expect(connections).toBe(1);
  });

  it('checks the port at connect time: a listed name resolving to a listed address reaches only its listed port', async () => {
    let connections = 0;
    const rx = await rawReceiver((s) => {
      connections += 1;
      s.once('data', () => s.end('HTTP/1.1 204 No Content\r\n\r\n'));
    });
    open.push(rx.close);
    // `localhost` is listed on the receiver's port, 127.0.0.1 on another one only: the name resolves to
    // 127.0.0.1 (or ::1), and that address is not open on this port, so nothing connects.
    const allow = new WebhookAllowList([
      `localhost:${rx.port}`,
      `127.0.0.1:${rx.port + 1}`,
      `[::1]:${rx.port + 1}`,
    ]);
    expect(allow.refuseUrl(`http://localhost:${rx.port}/`)).toBeUndefined();
    const r = await postWebhook(allow, `http://localhost:${rx.port}/`, '{}', {}, 2000);
    expect(r).toMatchObject({
      ok: false,
      retry: false,
      reason: expect.stringMatching(/not allowed on port/),
    });
    expect(connections).toBe(0);
    // Listed with that very port too, the same name connects.
    const both = new WebhookAllowList([`localhost:${rx.port}`, `127.0.0.1:${rx.port}`, `[::1]:${rx.port}`]);
    expect(await postWebhook(both, `http://localhost:${rx.port}/`, '{}', {}, 2000)).toEqual({
      ok: true,
      status: 204,
    });
    expect(connections).toBe(1);
  });
});
