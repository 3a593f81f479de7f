// Follows an operation's progress the way a browser page does without custom headers: a plain
// `EventSource` on the watch URL with a watch token (CreateWatchToken), from a page of another
// origin (the console's situation), in real headless Chromium. Driven by
// tests/api/watch_tokens.rs.
//
// Usage: node watch_token.mjs PAGE_ORIGIN WATCH_URL
//
// PAGE_ORIGIN (http://127.0.0.1:PORT) is served by this script with a CSP that lets the page connect only
// to itself and the API origin, as the console's does. The page opens WATCH_URL, collects every
// event until the operation is at rest, closes the EventSource, then opens the same URL again
// (the token is spent). Prints one JSON line: {events: [...], firstError, again: {opened,
// messages, readyState}, cspViolations, requests}.

import http from 'node:http';

import { launchChromium } from './chromium.mjs';

const [pageOrigin, watchUrl] = process.argv.slice(2);
if (!pageOrigin || !watchUrl) {
  console.error('usage: watch_token.mjs PAGE_ORIGIN WATCH_URL');
  process.exit(2);
}
const TIMEOUT = 120_000; // only prevents hangs
const apiOrigin = new URL(watchUrl).origin;

// The page is served from a real loopback listener, not by page.route: Chromium's local
// network access checks treat a page of no address as public and refuse its requests to
// loopback, which is where the API is in this test.
const server = http.createServer((req, res) => {
  res.writeHead(200, {
    'content-type': 'text/html',
    'content-security-policy': `default-src 'self'; connect-src 'self' ${apiOrigin}`,
  });
  res.end('<!doctype html><title>watch</title><p>watching</p>');
});
await new Promise((resolve) => server.listen(Number(new URL(pageOrigin).port), '127.0.0.1', resolve));

const browser = await launchChromium();
try {
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const requests = [];
  const messages = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
  page.on('response', async (r) => messages.push(
    `response: ${r.status()} ${r.url()} ${JSON.stringify(await r.allHeaders())}`));
  page.on('requestfailed', (r) => messages.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation',
      (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(`${pageOrigin}/`, { waitUntil: 'load' });
  const report = await page.evaluate(async (url) => {
    const atRest = ['OPERATION_STATE_SUCCEEDED', 'OPERATION_STATE_FAILED',
      'OPERATION_STATE_CANCELLED', 'OPERATION_STATE_PLANNED'];
    // Until the operation is at rest; an error before that ends the wait too.
    const follow = () => new Promise((resolve) => {
      const source = new EventSource(url);
      const events = [];
      let opened = false;
      source.onopen = () => { opened = true; };
      source.onmessage = (e) => {
        const snapshot = JSON.parse(e.data);
        events.push(snapshot);
        if (atRest.includes(snapshot.state)) {
          source.close();
          resolve({ opened, events, error: null, readyState: source.readyState });
        }
      };
      source.onerror = () => {
        // A refused request (401) fails the connection for good: readyState CLOSED (2).
        if (source.readyState === EventSource.CLOSED || events.length === 0) {
          source.close();
          resolve({ opened, events, error: 'error', readyState: source.readyState });
        }
      };
    });
    const first = await follow();
    const again = await follow();
    return { first, again };
  }, watchUrl);
  const cspViolations = await page.evaluate(() => window.__csp);
  console.log(JSON.stringify({
    events: report.first.events,
    firstError: report.first.error,
    again: { opened: report.again.opened, messages: report.again.events.length,
      error: report.again.error },
    cspViolations,
    requests,
    messages,
  }));
} finally {
  await browser.close();
  server.close();
}
