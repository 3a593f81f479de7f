// Opens the REST API's docs page (Swagger UI at /api/v1/docs through Envoy) in real headless
// Chromium (Debian's, driven by playwright-core) and reports what it shows and what it loaded.
// Driven by tests/api/api_docs.rs.
//
// Usage: node api_docs.mjs ENVOY_ORIGIN SCREENSHOT_DIR
//
// Prints one JSON line: {finalUrl, routes: ["GET /api/v1/files", ...], requests: [every URL
// the page asked for], messages: [console messages and failed requests], cspViolations: [...]}.

import { launchChromium } from './chromium.mjs';

const [origin, shots] = process.argv.slice(2);
if (!origin || !shots) {
  console.error('usage: api_docs.mjs ENVOY_ORIGIN SCREENSHOT_DIR');
  process.exit(2);
}
const TIMEOUT = 60_000; // only prevents hangs

const browser = await launchChromium();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const requests = [];
  const messages = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
  page.on('response', (r) => { if (r.status() >= 400) messages.push(`failed: HTTP ${r.status()} ${r.url()}`); });
  page.on('requestfailed', (r) => messages.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation',
      (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  // Without the trailing slash, as a person types it: Envoy redirects.
  await page.goto(`${origin}/api/v1/docs`, { waitUntil: 'load' });
  await page.waitForSelector('.opblock', { state: 'attached' });
  // Every operation, as Swagger UI renders it: method and path.
  const routes = await page.$$eval('.opblock', (blocks) => blocks.map((b) => {
    const method = b.querySelector('.opblock-summary-method')?.textContent?.trim() ?? '?';
    const path = b.querySelector('.opblock-summary-path')?.getAttribute('data-path') ?? '?';
    return `${method.toUpperCase()} ${path}`;
  }));
  await page.screenshot({ path: `${shots}/api-docs.png` });
  const cspViolations = await page.evaluate(() => window.__csp);
  console.log(JSON.stringify({ finalUrl: page.url(), routes, requests, messages, cspViolations }));
} finally {
  await browser.close();
}
