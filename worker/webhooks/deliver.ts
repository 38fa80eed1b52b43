// One webhook attempt: a POST whose connection may only reach addresses the allow-list accepts, checked on the
// address actually resolved at connect time (DNS rebinding), never following a redirect, bounded in total time.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { normalizeHost, type WebhookAllowList } from '../../core/webhooks/allow-list.ts';

export type AttemptResult =
  | { ok: true; status: number }
  /** `retry` false: trying again cannot help (refused target, redirect). `status`: the answer's, if any. */
  | { ok: false; retry: boolean; reason: string; status?: number };

/**
 * A DNS lookup that fails when any address of the name is not allowed on the URL's port, so no connection can
 * pick one. The port is the request's own (the lookup is made for this one connection: no agent, no reuse).
 */
function guardedLookup(allow: WebhookAllowList, port: number, protocol: string): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      const bad = addresses.find((a) => !allow.addressAllowed(a.address, port, protocol));
      if (bad || addresses.length === 0) {
        const e: NodeJS.ErrnoException = new Error(
          `refused: ${hostname} resolves to ${bad?.address ?? 'nothing'}, which is not allowed on port ${port}`,
        );
        e.code = 'EWEBHOOKREFUSED';
        return callback(e, '', 0);
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0] as LookupAddress;
      return callback(null, first.address, first.family);
    });
  };
}

/**
 * One POST. `timeoutMs` bounds the whole attempt, from the name lookup to the last byte of the answer, not the
 * time between two packets: a receiver that trickles its answer one byte at a time is cut off all the same.
 */
export function postWebhook(
  allow: WebhookAllowList,
  target: string,
  body: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<AttemptResult> {
  const refused = allow.refuseUrl(target);
  if (refused) return Promise.resolve({ ok: false, retry: false, reason: `webhook_url: ${refused}` });
  const url = new URL(target);
  // An IP literal is connected to without a lookup: refuseUrl has checked it above.
  const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
  const lookup =
    isIP(normalizeHost(url.hostname)) === 0 ? guardedLookup(allow, port, url.protocol) : undefined;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    let settled = false;
    const settle = (r: AttemptResult) => {
      if (settled) return;
      settled = true;
      resolve(r);
    };
    const req = send(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        ...(lookup ? { lookup } : {}),
        // No keep-alive agent: every attempt resolves (and checks) the name afresh.
        agent: false,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        // The receiver's body is not needed: drained, and cut off by the deadline if it never ends.
        res.on('error', () => undefined);
        res.on('end', () => clearTimeout(deadline));
        res.resume();
        if (status >= 200 && status < 300) settle({ ok: true, status });
        else if (status >= 300 && status < 400) {
          settle({
            ok: false,
            retry: false,
            status,
            reason: `answered ${status}: redirects are not followed`,
          });
        } else settle({ ok: false, retry: true, status, reason: `answered ${status}` });
      },
    );
    // The overall limit: lookup, connect, TLS, sending, and the answer's head all within timeoutMs.
    const deadline = setTimeout(() => {
      settle({ ok: false, retry: true, reason: `no answer within ${timeoutMs} ms` });
      req.destroy(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('close', () => clearTimeout(deadline));
    req.on('error', (err: NodeJS.ErrnoException) =>
      settle({ ok: false, retry: err.code !== 'EWEBHOOKREFUSED', reason: err.message }),
    );
    req.end(body);
  });
}
