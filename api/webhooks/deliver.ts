// One webhook attempt: a POST whose connection may only reach addresses the allow-list accepts, checked on the
// address actually resolved at connect time (DNS rebinding), never following a redirect, bounded in time.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { normalizeHost, type WebhookAllowList } from './allow-list.ts';

export type AttemptResult =
  | { ok: true; status: number }
  /** `retry` false: trying again cannot help (refused target, redirect). */
  | { ok: false; retry: boolean; reason: string };

/** A DNS lookup that fails when any address of the name is not allowed, so no connection can pick one. */
function guardedLookup(allow: WebhookAllowList): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      const bad = addresses.find((a) => !allow.addressAllowed(a.address));
      if (bad || addresses.length === 0) {
        const e: NodeJS.ErrnoException = new Error(
          `refused: ${hostname} resolves to ${bad?.address ?? 'nothing'}, which is not allowed`,
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
  const lookup = isIP(normalizeHost(url.hostname)) === 0 ? guardedLookup(allow) : undefined;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    const req = send(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        timeout: timeoutMs,
        ...(lookup ? { lookup } : {}),
        // No keep-alive agent: every attempt resolves (and checks) the name afresh.
        agent: false,
      },
      (res) => {
        res.resume(); // the receiver's body is not needed; drain it
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve({ ok: true, status });
        else if (status >= 300 && status < 400) {
          resolve({ ok: false, retry: false, reason: `answered ${status}: redirects are not followed` });
        } else resolve({ ok: false, retry: true, reason: `answered ${status}` });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve({ ok: false, retry: err.code !== 'EWEBHOOKREFUSED', reason: err.message }),
    );
    req.end(body);
  });
}
