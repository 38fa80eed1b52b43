// Security headers on every response (Hono's secureHeaders): nosniff, a referrer policy, no framing, and a CSP.
// API answers (JSON, CSV, files) get the strictest policy: nothing may load, nothing may frame them. The two HTML
// pages set their own policy, which the middleware keeps (overwrite: false): `/` allows exactly its own inline
// script and style, by hash, and `/docs` only the Swagger UI files this service serves itself.
import { createHash } from 'node:crypto';
import { secureHeaders } from 'hono/secure-headers';

export const securityHeaders = secureHeaders({
  contentSecurityPolicy: {
    defaultSrc: ["'none'"],
    frameAncestors: ["'none'"],
    baseUri: ["'none'"],
    formAction: ["'none'"],
  },
  referrerPolicy: 'no-referrer',
  xFrameOptions: 'DENY',
  // A dashboard on another origin reads the API with CORS (CORS_ALLOWED_ORIGINS), which this does not touch.
  crossOriginResourcePolicy: 'same-origin',
  overwrite: false,
});

const hash = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** The CSP of an HTML page whose inline `<script>` and `<style>` blocks are allowed by their hashes. */
export function pagePolicy(html: string, extra: { scriptSrc?: string[]; styleSrc?: string[] } = {}): string {
  const inline = (tag: string) =>
    [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => hash(m[1] ?? ''));
  return [
    "default-src 'none'",
    `script-src ${[...inline('script'), ...(extra.scriptSrc ?? [])].join(' ') || "'none'"}`,
    `style-src ${[...inline('style'), ...(extra.styleSrc ?? [])].join(' ') || "'none'"}`,
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
  ].join('; ');
}
