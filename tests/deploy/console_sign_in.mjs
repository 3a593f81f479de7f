// Signs in to the browser console as the compose stack serves it (tests/deploy/exercise.py), in
// real headless Chromium: the page loads from the console's port, reads the API origin from
// /config.json, and calls the API over grpc-web through Envoy under the console's own CSP and the
// server's CORS. After signing in it browses the root folder and expects FOLDER there.
//
// Usage: node console_sign_in.mjs CONSOLE_URL EMAIL PASSWORD FOLDER SCREENSHOT
// Prints `DONE <json>` (what the page showed); exits non-zero on any failure, a CSP violation or a
// console error.

import { launchChromium } from '../clients/chromium.mjs';

const [consoleUrl, email, password, folder, screenshot] = process.argv.slice(2);
if (!screenshot) {
  console.error('usage: console_sign_in.mjs CONSOLE_URL EMAIL PASSWORD FOLDER SCREENSHOT');
  process.exit(2);
}
const TIMEOUT = 60_000; // only prevents hangs
const consoleErrors = [];
const cspViolations = [];

const browser = await launchChromium();
let page;
try {
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT);
  await context.exposeFunction('__cspViolation', (v) => cspViolations.push(v));
  await context.addInitScript(() => document.addEventListener('securitypolicyviolation', (e) => {
    window.__cspViolation({ directive: e.violatedDirective, blocked: e.blockedURI });
  }, true));
  page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  await page.goto(consoleUrl);
  await page.waitForSelector('#login:not([disabled])');
  const api = await page.textContent('#api-url');
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.click('#login');
  await page.waitForSelector('#app:not([hidden]), #error:not([hidden])');
  if (!(await page.isVisible('#app'))) {
    throw new Error(`signing in failed (API ${api}): ${await page.textContent('#error')}`);
  }
  const who = await page.textContent('#who');
  await page.fill('#path', '');
  await page.click('#browse');
  await page.waitForSelector(`#listing tr.dir[data-path="${folder}"]`);
  await page.screenshot({ path: screenshot, fullPage: true });
  if (cspViolations.length || consoleErrors.length) {
    throw new Error(`CSP violations ${JSON.stringify(cspViolations)}, console errors ${JSON.stringify(consoleErrors)}`);
  }
  console.log(`DONE ${JSON.stringify({ api, who, folder })}`);
} catch (err) {
  if (page) {
    await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
  }
  console.error(String(err && err.stack || err));
  process.exitCode = 1;
} finally {
  await browser.close();
}
