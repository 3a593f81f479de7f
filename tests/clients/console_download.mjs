// The console's "Download as zip" in real headless Chromium (playwright-core), driven by
// tests/api/console.rs: signs in as EMAIL (registered by the test, whose storage holds
// FOLDER), browses to FOLDER, presses "Download as zip" and saves the browser's download to
// SAVE_PATH; the test then opens the zip itself.
//
// Usage: node console_download.mjs CONSOLE_URL EMAIL FOLDER SAVE_PATH SCREENSHOT_DIR
// Prints `DONE <json>` with what the page showed; exits non-zero on any failure.

import { join } from 'node:path';
import { launchChromium } from './chromium.mjs';

const [consoleUrl, email, folder, savePath, shots] = process.argv.slice(2);
if (!shots) {
  console.error('usage: console_download.mjs CONSOLE_URL EMAIL FOLDER SAVE_PATH SCREENSHOT_DIR');
  process.exit(2);
}
const PASSWORD = 'correct horse battery';
const TIMEOUT = 60_000; // only prevents hangs
const consoleErrors = [];

const browser = await launchChromium();
let page;
try {
  const context = await browser.newContext({ acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(msg.text()); });
  page.on('pageerror', (err) => consoleErrors.push(String(err)));
  await page.goto(consoleUrl);
  await page.waitForFunction(() => !document.querySelector('#login').disabled);
  await page.fill('#email', email);
  await page.fill('#password', PASSWORD);
  await page.click('#login');
  await page.waitForSelector('#app:not([hidden])');
  // The root's listing, which sign-in starts, first: it would otherwise land after the folder
  // is typed and reset the folder box (the download then was the root's, files.zip).
  await page.waitForSelector('#listing tbody tr');
  await page.fill('#path', folder);
  await page.click('#browse');
  // The folder's own listing: no row is the folder itself any more.
  await page.waitForFunction((f) => {
    const rows = [...document.querySelectorAll('#listing tbody tr')].map((r) => r.textContent);
    return document.querySelector('#path').value === f && rows.length > 0
      && !rows.some((text) => text.startsWith(f));
  }, folder);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click('#download-zip'),
  ]);
  await download.saveAs(savePath);
  await page.waitForFunction(
    () => document.querySelector('#status').textContent.startsWith('Downloaded')
      || !document.querySelector('#error').hidden);
  await page.screenshot({ path: join(shots, 'download-zip.png'), fullPage: true });
  const shown = await page.evaluate(() => ({
    status: document.querySelector('#status').textContent,
    error: document.querySelector('#error').hidden ? '' : document.querySelector('#error').textContent,
  }));
  console.log(`DONE ${JSON.stringify({ ...shown, suggested: download.suggestedFilename(), consoleErrors })}`);
} catch (err) {
  if (page) await page.screenshot({ path: join(shots, 'download-zip-failed.png'), fullPage: true }).catch(() => {});
  console.error(err);
  process.exitCode = 1;
} finally {
  await browser.close();
}
