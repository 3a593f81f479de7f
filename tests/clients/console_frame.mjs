// Tries to frame the browser console from another origin in real headless Chromium (Debian's,
// driven by playwright-core), the way a clickjacking page would, and reports what loaded.
// Driven by tests/api/console.rs.
//
// Usage: node console_frame.mjs CONSOLE_URL
//
// The framing page is served by a small HTTP server this script runs on 127.0.0.1 (another
// port, so another origin; a real server rather than request interception, since Chromium's
// local-network checks refuse a loopback frame inside a page that came from nowhere). It holds
// two iframes: the console, and, as a control, a page of its own origin with a marker, so the
// report shows that a frame that is allowed does load and can be read. Prints one JSON line:
// {framingPage, console: {url, loginForm}, control: {url, marker}, messages}.

import { createServer } from 'node:http';
import { launchChromium } from './chromium.mjs';

const [consoleUrl] = process.argv.slice(2);
if (!consoleUrl) {
  console.error('usage: console_frame.mjs CONSOLE_URL');
  process.exit(2);
}
const TIMEOUT = 30_000; // only prevents hangs

const browser = await launchChromium();
const framing = createServer((request, response) => {
  const body = request.url === '/control'
    ? '<!doctype html><p id="marker">control frame</p>'
    : `<!doctype html><title>win a prize</title>
       <iframe id="console" src="${consoleUrl}/" width="800" height="600"></iframe>
       <iframe id="control" src="/control" width="200" height="100"></iframe>`;
  response.writeHead(200, { 'content-type': 'text/html', connection: 'close' });
  response.end(body);
});
await new Promise((resolve) => framing.listen(0, '127.0.0.1', resolve));
const otherOrigin = `http://127.0.0.1:${framing.address().port}`;
try {
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const messages = [];
  page.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
  page.on('requestfailed', (r) => messages.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
  // Both iframes' load events have fired by then (a refused frame loads an error page).
  await page.goto(`${otherOrigin}/`, { waitUntil: 'load' });

  async function inspect(id, probe) {
    const frame = await (await page.$(`iframe#${id}`)).contentFrame();
    let found = null;
    try {
      found = await frame.evaluate(probe);
    } catch (err) {
      found = `unreadable: ${err.message.split('\n')[0]}`;
    }
    return { url: frame.url(), found };
  }
  const framedConsole = await inspect('console', () => Boolean(document.querySelector('#login-form')));
  const control = await inspect('control', () => document.querySelector('#marker')?.textContent ?? null);
  console.log(JSON.stringify({
    framingPage: otherOrigin,
    console: { url: framedConsole.url, loginForm: framedConsole.found },
    control: { url: control.url, marker: control.found },
    messages,
  }));
} finally {
  await browser.close();
  framing.close();
}
