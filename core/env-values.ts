// How each kind of environment value is read and checked (numbers, URLs, lists, flags), for the one config
// loader (core/config.ts). Every problem names its variable, and a value that may hold a password is never
// echoed back.
import { resolve } from 'node:path';
import { z } from 'zod';

const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$/;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const posInt = (name: string, def: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return def;
      if (!/^\d+$/.test(v) || Number(v) < 1 || !Number.isSafeInteger(Number(v))) {
        ctx.addIssue({
          code: 'custom',
          message: `${name}: expected a positive integer, got ${JSON.stringify(v)}`,
        });
        return z.NEVER;
      }
      return Number(v);
    });

export const nonNegInt = (name: string, def: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return def;
      if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
        ctx.addIssue({
          code: 'custom',
          message: `${name}: expected a non-negative integer, got ${JSON.stringify(v)}`,
        });
        return z.NEVER;
      }
      return Number(v);
    });

/** Unset and empty are the same: undefined. */
export const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v === '' ? undefined : v));

/** An optional value, or `def` when unset. */
export const stringOr = (def: string) => optionalString.transform((v) => v ?? def);

/** An optional path, made absolute against the working directory. */
export const optionalPath = optionalString.transform((v) => (v === undefined ? undefined : resolve(v)));

/** A wrong URL, told without what could be a secret in it: a scheme and length at most. */
function describeValue(v: string): string {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(v)?.[1];
  const secretish = /@|:[^/]*:/.test(v);
  if (!secretish) return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}...` : v);
  return `a ${v.length}-character value${scheme ? ` with scheme ${JSON.stringify(scheme)}` : ''} (not shown: it may hold a password)`;
}

export const httpUrl = (name: string) =>
  optionalString.superRefine((v, ctx) => {
    if (v === undefined) return;
    try {
      const u = new URL(v);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
    } catch {
      // A URL may carry a password (CLICKHOUSE_URL): the message shows only its shape.
      ctx.addIssue({ code: 'custom', message: `${name}: expected an http(s) URL, got ${describeValue(v)}` });
    }
  });

/** A PostgreSQL connection URL (it may carry a password: a wrong one is shown by its shape only). */
export const postgresUrl = (name: string) =>
  optionalString.superRefine((v, ctx) => {
    if (v === undefined) return;
    let ok = false;
    try {
      ok = ['postgres:', 'postgresql:'].includes(new URL(v).protocol);
    } catch {
      ok = false;
    }
    if (!ok)
      ctx.addIssue({
        code: 'custom',
        message: `${name}: expected postgres://..., got ${describeValue(v)}`,
      });
  });

export const redisUrl = (name: string) =>
  optionalString.superRefine((v, ctx) => {
    if (v !== undefined && !/^rediss?:\/\/[^\s]+$/.test(v)) {
      ctx.addIssue({
        code: 'custom',
        message: `${name}: expected redis://host:port or rediss://...`,
      });
    }
  });

/** True for a loopback host name or address (localhost, 127.0.0.0/8, ::1). */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || /^127(\.\d{1,3}){3}$/.test(h) || h === '::1';
}

// The IdP's keys decide who is who: fetched over plain HTTP, anyone on the path could swap them. Loopback is
// the exception (a local IdP in development and tests).
export const jwksUrl = (name: string) =>
  optionalString.superRefine((v, ctx) => {
    if (v === undefined) return;
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      ctx.addIssue({
        code: 'custom',
        message: `${name}: expected an https URL, got ${describeValue(v)}`,
      });
      return;
    }
    if (u.protocol === 'https:' || (u.protocol === 'http:' && isLoopbackHost(u.hostname))) return;
    ctx.addIssue({
      code: 'custom',
      message: `${name}: must be https:// (plain http only for a loopback host), got ${describeValue(v)}`,
    });
  });

/** A secret of at least `minBytes` bytes (UTF-8), never echoed. */
export const secret = (name: string, minBytes: number) =>
  optionalString.superRefine((v, ctx) => {
    if (v !== undefined && Buffer.byteLength(v, 'utf8') < minBytes) {
      ctx.addIssue({ code: 'custom', message: `${name}: must be at least ${minBytes} bytes` });
    }
  });

export const flag = (name: string) =>
  optionalString.transform((v, ctx) => {
    if (v === undefined || /^(0|false|no|off)$/i.test(v)) return false;
    if (/^(1|true|yes|on)$/i.test(v)) return true;
    ctx.addIssue({ code: 'custom', message: `${name}: expected true or false, got ${JSON.stringify(v)}` });
    return z.NEVER;
  });

const badIdentifier = (name: string, id: string, ctx: z.RefinementCtx): boolean => {
  if (IDENT.test(id)) return false;
  ctx.addIssue({
    code: 'custom',
    message: `${name}: expected letters, digits and _, got ${JSON.stringify(id)}`,
  });
  return true;
};

/** A name of the engine's (letters, digits and _), or `def` when unset. */
export const identifier = (name: string, def: string) =>
  optionalString.transform((v, ctx) => (badIdentifier(name, v ?? def, ctx) ? z.NEVER : (v ?? def)));

/** A name of the engine's (letters, digits and _), or undefined when unset. */
export const optionalIdentifier = (name: string) =>
  optionalString.transform((v, ctx) => (v !== undefined && badIdentifier(name, v, ctx) ? z.NEVER : v));

/** Comma-separated, trimmed, empty items dropped. */
const items = (v: string | undefined): string[] =>
  (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** Comma-separated host:port pairs; undefined when unset. */
export const hostPorts = (name: string) =>
  optionalString.transform((v, ctx) => {
    if (v === undefined) return undefined;
    const list = items(v);
    const bad = list.filter((b) => !HOST_PORT.test(b));
    if (list.length === 0 || bad.length > 0) {
      ctx.addIssue({
        code: 'custom',
        message: `${name}: expected comma-separated host:port, got ${JSON.stringify(bad[0] ?? v)}`,
      });
      return z.NEVER;
    }
    return list;
  });

/** Comma-separated `host` or `host:port` entries (IPv6 in brackets); none when unset. */
export const hosts = (name: string) =>
  optionalString.transform((v, ctx) => {
    const list = items(v);
    const bad = list.find((h) => !/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(h));
    if (bad !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `${name}: expected comma-separated host or host:port, got ${JSON.stringify(bad)}`,
      });
      return z.NEVER;
    }
    return list;
  });

// Browser origins allowed to call the API: exact origins only. `*` is refused, since the API's answers are
// tenant data behind credentials a page could be tricked into sending.
export const origins = (name: string) =>
  optionalString.transform((v, ctx) => {
    const out: string[] = [];
    for (const o of items(v)) {
      let origin: string | undefined;
      try {
        const u = new URL(o);
        if ((u.protocol === 'http:' || u.protocol === 'https:') && u.origin === o.replace(/\/$/, '')) {
          origin = u.origin;
        }
      } catch {
        // reported below
      }
      if (o === '*' || origin === undefined) {
        ctx.addIssue({
          code: 'custom',
          message:
            o === '*'
              ? `${name}: "*" is not accepted; list each origin, e.g. https://dash.example.com`
              : `${name}: expected comma-separated origins like https://dash.example.com, got ${JSON.stringify(o)}`,
        });
        return z.NEVER;
      }
      out.push(origin);
    }
    return out;
  });

export const topic = (name: string, def: string) =>
  optionalString.transform((v, ctx) => {
    const t = v ?? def;
    if (!/^[A-Za-z0-9._-]{1,200}$/.test(t)) {
      ctx.addIssue({
        code: 'custom',
        message: `${name}: not a valid Kafka topic name: ${JSON.stringify(t)}`,
      });
      return z.NEVER;
    }
    return t;
  });

/** One of `options`, case-insensitive, or `def` when unset. */
export const choice = <T extends string>(name: string, options: readonly T[], def: T) =>
  optionalString.transform((v, ctx) => {
    const c = (v ?? def).toLowerCase();
    if (!(options as readonly string[]).includes(c)) {
      ctx.addIssue({
        code: 'custom',
        message: `${name}: expected one of ${options.join(', ')}, got ${JSON.stringify(v)}`,
      });
      return z.NEVER;
    }
    return c as T;
  });

// security: RATE_LIMIT_OVERRIDES="jwt:<iss>:<sub>=1000,key:<id>=500", identities exactly as the limiter keys them
// (the iss may be empty, "jwt::alice"); the last "=" separates the limit, so identities may contain ":" and "=".
export const limitOverrides = (name: string) =>
  optionalString.transform((v, ctx): ReadonlyMap<string, number> => {
    const out = new Map<string, number>();
    for (const item of items(v)) {
      const eq = item.lastIndexOf('=');
      const id = item.slice(0, Math.max(eq, 0));
      const n = item.slice(eq + 1);
      const problem =
        eq < 1
          ? 'expected IDENTITY=LIMIT'
          : !/^jwt:[^:]*:.+$/.test(id) && !/^key:[0-9a-f]{16}$/.test(id)
            ? 'the identity must be jwt:<iss>:<sub> or key:<16 hex digits>'
            : !/^\d+$/.test(n) || Number(n) < 1 || !Number.isSafeInteger(Number(n))
              ? 'the limit must be a positive integer'
              : out.has(id)
                ? 'the identity is listed twice'
                : undefined;
      if (problem) {
        ctx.addIssue({ code: 'custom', message: `${name}: ${problem}, got ${JSON.stringify(item)}` });
      } else {
        out.set(id, Number(n));
      }
    }
    return out;
  });
