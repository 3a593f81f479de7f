// Clicks through the browser console (console/, built by vite) in real headless Chromium
// (Debian's, driven by playwright-core), the way a person would, and reports what it saw.
// Driven by tests/api/console.rs.
//
// Usage: node console_flow.mjs CONSOLE_URL API_URL BAD_ORIGIN UPLOAD_DIR SCREENSHOT_DIR EMAIL DECOY_URL
//
//   CONSOLE_URL  the console as `fileorg serve` serves it (an origin listed in CORS_ORIGINS)
//   API_URL      the grpc-web endpoint (the gRPC port), another origin
//   BAD_ORIGIN   an origin NOT in CORS_ORIGINS; the same built console is served there by
//                request interception (nothing listens on it), and must fail to reach the API
//   UPLOAD_DIR   every file in it is uploaded into inbox/
//   DECOY_URL    a listener of the Rust test that records every request it gets: the console
//                is opened as CONSOLE_URL/?api=DECOY_URL and must send it nothing
//
// The real console runs under the Content-Security-Policy `fileorg serve` sends; every
// `securitypolicyviolation` event is reported (cspViolations), and console errors too.
//
// Protocol: after the apply finished the script prints `APPLIED <json>` and waits for a line
// on stdin (the Rust test checks the disk meanwhile); at the end it prints `DONE <json>`.
// Exits non-zero on any failure.

import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { launchChromium } from './chromium.mjs';

const [consoleUrl, apiUrl, badOrigin, uploadDir, shots, email, decoyUrl] = process.argv.slice(2);
if (!decoyUrl) {
  console.error('usage: console_flow.mjs CONSOLE_URL API_URL BAD_ORIGIN UPLOAD_DIR SCREENSHOT_DIR EMAIL DECOY_URL');
  process.exit(2);
}
const PASSWORD = 'correct horse battery';
const TIMEOUT = 60_000; // only prevents hangs
const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const consoleErrors = [];
const cspViolations = [];

const browser = await launchChromium();

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

/** On failure: what the page showed, on stderr, and a screenshot. */
async function explain(page, name) {
  try {
    const seen = await page.evaluate(() => Object.fromEntries(
      ['status', 'error', 'op-state', 'op-name', 'path'].map((id) => {
        const el = document.getElementById(id);
        return [id, el ? (el.value ?? el.textContent) : null];
      })));
    console.error(`${name}: the page showed ${JSON.stringify(seen)}`);
    await shot(page, `${name}-failure`);
  } catch (err) {
    console.error(`${name}: could not inspect the page: ${err}`);
  }
}

async function signIn(page, button) {
  await page.fill('#email', email);
  await page.fill('#password', PASSWORD);
  await page.click(button);
}

let failing;
try {
  // ------------------------------------------------------------ the real console
  const context = await browser.newContext({ viewport: { width: 1100, height: 1000 } });
  context.setDefaultTimeout(TIMEOUT);
  await context.exposeFunction('__cspViolation', (v) => cspViolations.push(v));
  await context.addInitScript(() => document.addEventListener('securitypolicyviolation', (e) => {
    window.__cspViolation({ directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile });
  }, true));
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  failing = page;
  // A link that tries to point the sign-in form elsewhere: the console ignores ?api=.
  await page.goto(`${consoleUrl}/?api=${encodeURIComponent(decoyUrl)}`);
  await page.waitForSelector('#register:not([disabled])');
  const shownApi = await page.textContent('#api-url');
  await signIn(page, '#register');
  await page.waitForSelector('#app:not([hidden]), #error:not([hidden])');
  if (!(await page.isVisible('#app'))) {
    throw new Error(`signing in failed (API shown: ${shownApi}): ${await page.textContent('#error')}`);
  }
  const who = await page.textContent('#who');

  // Upload into inbox/, then browse: root shows the folder, clicking it lists the files.
  const uploads = readdirSync(uploadDir).map((name) => join(uploadDir, name));
  await page.setInputFiles('#upload-file', uploads);
  await page.click('#upload');
  await page.waitForFunction((n) => document.querySelector('#status').textContent === `Uploaded ${n} file(s) into inbox.`, uploads.length);
  await page.fill('#path', '');
  await page.click('#browse');
  await page.waitForSelector('#listing tr.dir[data-path="inbox"]');
  const rootListing = await page.$$eval('#listing tbody tr', (rows) => rows.map((r) => r.dataset.path));
  await page.click('#listing tr.dir[data-path="inbox"] td');
  await page.waitForFunction((n) => document.querySelectorAll('#listing tr.file').length === n, uploads.length);
  const inboxListing = await page.$$eval('#listing tr.file', (rows) => rows.map((r) => r.dataset.path).sort());
  await shot(page, '1-browse');

  // Dry run: the plan is shown, nothing moves.
  await page.click('#preview');
  await page.waitForSelector('#op-state[data-state="PLANNED"]');
  await page.waitForFunction((n) => document.querySelectorAll('#plan tr.record').length === n, uploads.length);
  const plan = await page.$$eval('#plan tr.record', (rows) => rows.map((r) => {
    const [from, to, category, status] = [...r.cells].map((c) => c.textContent);
    return { from, to, category, status };
  }));
  // The buttons follow the server's answer to a GetOperation after the plan is drawn: wait for it.
  await page.waitForSelector('#apply:not([disabled])', { timeout: 15000 })
    .catch(() => { throw new Error('Apply is not enabled after the preview'); });
  await shot(page, '2-preview');

  // Apply: record every value the progress bar shows, from the WatchOperation stream.
  await page.evaluate(() => {
    window.__progress = [];
    const bar = document.querySelector('#progress');
    new MutationObserver(() => window.__progress.push(Number(bar.getAttribute('aria-valuenow'))))
      .observe(bar, { attributes: true, attributeFilter: ['aria-valuenow'] });
  });
  await page.click('#apply');
  await page.waitForSelector('#op-state[data-state="SUCCEEDED"]');
  await page.waitForSelector('#report', { state: 'visible' });
  await page.waitForSelector('#category-chart rect.bar');
  const progress = await page.evaluate(() => ({
    values: window.__progress,
    now: Number(document.querySelector('#progress').getAttribute('aria-valuenow')),
    text: document.querySelector('#progress-text').textContent,
    fillWidth: document.querySelector('#progress .fill').getBoundingClientRect().width,
    barWidth: document.querySelector('#progress').getBoundingClientRect().width,
  }));
  const chart = await page.$$eval('#category-chart rect.bar', (bars) => bars.map((b) => ({
    category: b.dataset.category,
    count: Number(b.dataset.count),
    width: b.getBoundingClientRect().width,
  })));
  const appliedPlan = await page.$$eval('#plan tr.record', (rows) => rows.map((r) => r.dataset.status));
  const reportSummary = await page.textContent('#report-summary');
  await shot(page, '3-applied');
  console.log(`APPLIED ${JSON.stringify({ progress, chart, appliedPlan, reportSummary })}`);
  const reply = await stdinLines.next();
  if (reply.done || reply.value.trim() !== 'continue') throw new Error(`the test said ${JSON.stringify(reply.value)}`);

  // Undo: every file back in inbox/.
  await page.click('#undo');
  await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Undone'));
  await page.waitForFunction((n) => document.querySelectorAll('#listing tr.file').length === n, uploads.length);
  const afterUndo = await page.$$eval('#listing tr.file', (rows) => rows.map((r) => r.dataset.path).sort());
  const undoState = await page.getAttribute('#op-state', 'data-state');
  await shot(page, '4-undone');
  await context.close();

  // ------------------------------------------------------------ an origin not in CORS_ORIGINS
  // The same built console, served (by interception) from BAD_ORIGIN; its grpc-web calls go
  // to the real API, whose CORS answer lacks this origin, so the browser refuses them.
  const dist = new URL('../../console/dist/', import.meta.url);
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.map': 'application/json', '.json': 'application/json' };
  const bad = await browser.newContext();
  bad.setDefaultTimeout(TIMEOUT);
  const apiFailures = [];
  await bad.route(`${badOrigin}/**`, async (route) => {
    const path = new URL(route.request().url()).pathname.replace(/^\/+/, '') || 'index.html';
    try {
      // As an operator deploying the console on that origin would configure it.
      const body = path === 'config.json' ? JSON.stringify({ apiUrl }) : readFileSync(new URL(path, dist));
      await route.fulfill({ status: 200, body, headers: { 'content-type': types[extname(path)] || 'application/octet-stream' } });
    } catch {
      await route.fulfill({ status: 404, body: 'not found' });
    }
  });
  const badPage = await bad.newPage();
  failing = badPage;
  badPage.on('requestfailed', (r) => { if (r.url().startsWith(apiUrl)) apiFailures.push(r.failure()?.errorText ?? ''); });
  await badPage.goto(`${badOrigin}/`);
  await badPage.waitForSelector('#login:not([disabled])');
  await signIn(badPage, '#login');
  await badPage.waitForSelector('#error', { state: 'visible' });
  const badOriginResult = {
    error: await badPage.textContent('#error'),
    code: await badPage.getAttribute('#error', 'data-code'),
    appVisible: await badPage.isVisible('#app'),
    apiFailures,
  };
  await shot(badPage, '5-bad-origin');
  await bad.close();

  console.log(`DONE ${JSON.stringify({ who, shownApi, rootListing, inboxListing, plan, afterUndo, undoState, badOriginResult, consoleErrors, cspViolations })}`);
} catch (err) {
  if (failing) await explain(failing, 'console');
  console.error(`console errors: ${JSON.stringify(consoleErrors)}; CSP violations: ${JSON.stringify(cspViolations)}`);
  throw err;
} finally {
  await browser.close();
}
process.exit(0);
