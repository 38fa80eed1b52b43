// Where webhooks may go (server-side request forgery guard): a URL's host and port must be on
// WEBHOOK_ALLOWED_HOSTS, and every address the host resolves to at connect time must be public unless that
// very address is listed too, on the port being connected to (so a listed name that is re-pointed at 127.0.0.1
// or 169.254.169.254 is refused, and a listed name cannot reach other ports of a listed private address).
import { BlockList, isIP } from 'node:net';

// Loopback, private, shared, link-local, documentation, benchmark, multicast and reserved ranges. One list per
// family, each asked only about its own family: Node's BlockList also matches IPv4 addresses against IPv6 rules
// (as IPv4-mapped), so ::ffff:0:0/96 in a shared list would refuse every IPv4 address.
const NON_PUBLIC_V4 = new BlockList();
const NON_PUBLIC_V6 = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  NON_PUBLIC_V4.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  // IPv6 forms that embed an IPv4 address are refused whatever that address is: a connection to one reaches
  // the IPv4 host (loopback for ::7f00:1 or ::ffff:7f00:1), and decoding each form is a check easy to get wrong.
  ['::', 96], // IPv4-compatible (deprecated), which includes :: and ::1
  ['::ffff:0:0', 96], // IPv4-mapped, in dotted (::ffff:127.0.0.1) or hex (::ffff:7f00:1) form
  ['::ffff:0:0:0', 96], // IPv4-translated (SIIT)
  ['64:ff9b::', 96], // NAT64
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64],
  ['2001::', 32], // Teredo
  ['2001:db8::', 32],
  ['2002::', 16], // 6to4
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
] as const) {
  NON_PUBLIC_V6.addSubnet(net, bits, 'ipv6');
}

/**
 * Strips brackets and lowercases; an IPv6 address takes its one canonical text form (compressed, an embedded
 * IPv4 address in hex: ::ffff:127.0.0.1 becomes ::ffff:7f00:1), the form URL host names already have.
 */
export function normalizeHost(host: string): string {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (isIP(h) !== 6) return h;
  try {
    return new URL(`http://[${h}]/`).hostname.slice(1, -1);
  } catch {
    return h; // a zone id (fe80::1%eth0) does not parse: kept as written, it is not public anyway
  }
}

/** True for an address on the public internet (false for anything else, including what is not an IP). */
export function isPublicAddress(address: string): boolean {
  const a = normalizeHost(address);
  const family = isIP(a);
  if (family === 0) return false;
  return family === 4 ? !NON_PUBLIC_V4.check(a, 'ipv4') : !NON_PUBLIC_V6.check(a, 'ipv6');
}

interface Entry {
  host: string;
  port: number | undefined;
}

const defaultPort = (protocol: string) => (protocol === 'https:' ? 443 : 80);

export class WebhookAllowList {
  private readonly entries: Entry[];

  /** Entries `host`, `host:port` or `[v6]:port` (WEBHOOK_ALLOWED_HOSTS); no port means 80 / 443 only. */
  constructor(entries: readonly string[]) {
    this.entries = entries.map((e) => {
      const m = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(e.trim());
      if (!m?.[1])
        throw new Error(`WEBHOOK_ALLOWED_HOSTS: expected host or host:port, got ${JSON.stringify(e)}`);
      return { host: normalizeHost(m[1]), port: m[2] === undefined ? undefined : Number(m[2]) };
    });
  }

  get empty(): boolean {
    return this.entries.length === 0;
  }

  /** Why `raw` may not be a webhook target, or undefined when it may. */
  refuseUrl(raw: string): string | undefined {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return 'must be an absolute http(s) URL';
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http(s) URL';
    if (url.username || url.password) return 'must not contain credentials';
    const host = normalizeHost(url.hostname);
    const port = url.port === '' ? defaultPort(url.protocol) : Number(url.port);
    const listed = this.entries.some(
      (e) => e.host === host && (e.port ?? defaultPort(url.protocol)) === port,
    );
    if (!listed) return `host ${host}:${port} is not on WEBHOOK_ALLOWED_HOSTS`;
    if (isIP(host) !== 0 && !this.addressAllowed(host, port, url.protocol)) {
      return `address ${host}:${port} is not allowed`;
    }
    return undefined;
  }

  /**
   * An address a connection to `port` may go to: public, or itself listed with that port (no port listed: the
   * protocol's default). The port matters: listing 10.0.0.5:8443 opens that one service, not all of 10.0.0.5.
   */
  addressAllowed(address: string, port: number, protocol = 'http:'): boolean {
    const a = normalizeHost(address);
    return (
      isPublicAddress(a) ||
      this.entries.some((e) => e.host === a && (e.port ?? defaultPort(protocol)) === port)
    );
  }
}
