// Security headers on every response, and the two HTML pages still working under their CSP in headless Chromium
// with every other origin cut off: `/` runs its inline script, `/docs` renders Swagger UI from this service's own
// files (swagger-ui-dist), with no CSP violation and no request leaving the machine.
import { existsSync } from 'node:fs';
import { serve } from '@hono/node-server';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.ts';
import { createAuthenticator } from '../../api/middleware/auth.ts';
import { createLogger } from '../../core/logger.ts';
import { createDirectSink } from '../../ingest/direct.ts';
import { openTestEngine, type TestEngine } from '../helpers/engine.ts';

const CHROMIUM = '/usr/bin/chromium';

describe('security headers and the HTML pages under their CSP', () => {
  let engine: TestEngine;
  let app: ReturnType<typeof createApp>;
  let server: ReturnType<typeof serve> | undefined;
  let base: string;
  let browser: Browser | undefined;

  beforeAll(async () => {
    engine = await openTestEngine();
    app = createApp({
      ch: engine.ch,
      sink: createDirectSink(engine.ch),
      logger: createLogger('silent'),
      auth: createAuthenticator({ secret: 's'.repeat(40), issuer: undefined, audience: undefined }),
    });
    base = await new Promise((resolve) => {
      server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (i) =>
        resolve(`http://127.0.0.1:${i.port}`),
      );
    });
  });
  afterAll(async () => {
    await browser?.close();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await engine?.dispose();
  });

  it('sets nosniff, a referrer policy, no framing and a CSP on every kind of answer', async () => {
    const cases: Array<[string, RequestInit, number]> = [
      ['/', {}, 200],
      ['/docs', {}, 200],
      ['/docs/swagger-ui.css', {}, 200],
      ['/docs/nope.js', {}, 404],
      ['/healthz', {}, 200],
      ['/openapi.json', {}, 200],
      ['/reports/usage-summary?start_date=2025-01-01&end_date=2025-01-02', {}, 401],
      ['/nowhere', {}, 404],
      ['/healthz', { method: 'DELETE' }, 405],
    ];
    for (const [path, init, status] of cases) {
      const res = await app.request(path, init);
      expect(res.status, path).toBe(status);
      const h = res.headers;
      expect(h.get('x-content-type-options'), path).toBe('nosniff');
      expect(h.get('referrer-policy'), path).toBe('no-referrer');
      expect(h.get('x-frame-options'), path).toBe('DENY');
      expect(h.get('content-security-policy'), path).toContain("frame-ancestors 'none'");
      expect(h.get('x-request-id'), path).toBeTruthy();
    }
    const api = await app.request('/healthz');
    expect(api.headers.get('content-security-policy')).toContain("default-src 'none'");
    const docs = await app.request('/docs');
    expect(docs.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    expect(await docs.text()).not.toMatch(/https?:\/\//);
  });

  // Skipped only outside CI: .ci/run installs Chromium and sets CI, and a missing browser there is a failure.
  it.skipIf(!existsSync(CHROMIUM) && !process.env.CI)(
    'renders / and /docs in Chromium offline, with no CSP violation',
    async () => {
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--no-first-run',
          '--disable-background-networking',
        ],
      });
      const page = await browser.newPage();
      const problems: string[] = [];
      const outside: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      // Offline: anything not on this service is cut off (and noted).
      await page.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith(base) || url.startsWith('data:')) return route.continue();
        outside.push(url);
        return route.abort();
      });
      await page.goto(`${base}/`);
      // The inline script ran: it fills the date range.
      expect(await page.inputValue('#start')).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      await page.goto(`${base}/docs`);
      await page.locator('.opblock').first().waitFor({ timeout: 30_000 });
      expect(await page.locator('.opblock').count()).toBeGreaterThan(5);
      expect(await page.textContent('body')).toContain('/reports/usage-summary');
      expect(problems).toEqual([]);
      expect(outside).toEqual([]);
    },
    60_000,
  );
});
