// The console's uploads in real headless Chromium (playwright-core), driven by
// tests/api/console.rs against a server with the DEFAULT upload limit (10 a minute):
//
//  1. a whole folder of FOLDER_DIR (500 files) chosen with the folder input (webkitdirectory)
//     and uploaded into `album`: it goes as ONE ImportArchive (a tar built in the browser);
//     then Upload is pressed again: every file is reported as already there;
//  2. another user sends the files of SINGLES_DIR (12) one upload per file into `inbox`: the
//     11th meets the limit, the console waits the RetryInfo delay, says so, and goes on.
//
// Usage: node console_uploads.mjs CONSOLE_URL FOLDER_DIR SINGLES_DIR EMAIL1 EMAIL2 SCREENSHOT_DIR
// Prints `DONE <json>` with what the page showed; exits non-zero on any failure.

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium } from './chromium.mjs';

const [consoleUrl, folderDir, singlesDir, email1, email2, shots] = process.argv.slice(2);
if (!shots) {
  console.error('usage: console_uploads.mjs CONSOLE_URL FOLDER_DIR SINGLES_DIR EMAIL1 EMAIL2 SCREENSHOT_DIR');
  process.exit(2);
}
const PASSWORD = 'correct horse battery';
const TIMEOUT = 60_000; // only prevents hangs
const WAIT_TIMEOUT = 180_000; // the upload limit's window is a minute
const consoleErrors = [];

const browser = await launchChromium();

async function signedIn(email) {
  const page = await browser.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(msg.text()); });
  page.on('pageerror', (err) => consoleErrors.push(String(err)));
  await page.goto(consoleUrl);
  await page.waitForFunction(() => !document.querySelector('#register').disabled);
  await page.fill('#email', email);
  await page.fill('#password', PASSWORD);
  await page.click('#register');
  await page.waitForSelector('#app:not([hidden])');
  return page;
}

/** Presses Upload and waits for the final status; returns what the upload area showed. */
async function pressUpload(page, expectedStatus, timeout) {
  await page.evaluate(() => { document.querySelector('#status').textContent = ''; });
  await page.click('#upload');
  await page.waitForFunction(
    (want) => document.querySelector('#status').textContent === want
      || !document.querySelector('#error').hidden,
    expectedStatus, { timeout });
  return page.evaluate(() => {
    const rows = [...document.querySelectorAll('#upload-list li')];
    const states = {};
    for (const li of rows) states[li.dataset.state] = (states[li.dataset.state] ?? 0) + 1;
    const wait = document.querySelector('#upload-wait');
    const summary = document.querySelector('#upload-summary');
    return {
      status: document.querySelector('#status').textContent,
      error: document.querySelector('#error').hidden ? '' : document.querySelector('#error').textContent,
      summary: summary.textContent,
      done: Number(summary.dataset.done),
      total: Number(summary.dataset.total),
      rows: rows.length,
      states,
      waits: Number(wait.dataset.waits ?? '0'),
      waitText: wait.textContent,
    };
  });
}

let page;
try {
  // 1. A 500-file folder, then Upload again.
  page = await signedIn(email1);
  await page.fill('#upload-dir', 'album');
  await page.setInputFiles('#upload-folder', folderDir);
  const picked = await page.textContent('#upload-picked');
  const first = await pressUpload(page, `Uploaded ${readdirCount(folderDir)} file(s) into album.`, TIMEOUT * 2);
  await page.screenshot({ path: join(shots, 'uploads-folder.png'), fullPage: true });
  const second = await pressUpload(page, `Uploaded ${readdirCount(folderDir)} file(s) into album.`, TIMEOUT * 2);
  await page.close();

  // 2. Twelve single uploads, one request each: the limit is met and waited out.
  page = await signedIn(email2);
  await page.selectOption('#upload-mode', 'files');
  const singles = readdirSync(singlesDir).map((name) => join(singlesDir, name));
  await page.setInputFiles('#upload-file', singles);
  const seenWaiting = page.waitForFunction(
    () => document.querySelector('#upload-list li[data-state="waiting"]') !== null, null, { timeout: WAIT_TIMEOUT });
  const singlesResult = pressUpload(page, `Uploaded ${singles.length} file(s) into inbox.`, WAIT_TIMEOUT);
  await seenWaiting;
  const whileWaiting = await page.evaluate(() => ({
    waitText: document.querySelector('#upload-wait').textContent,
    waitHidden: document.querySelector('#upload-wait').hidden,
    summary: document.querySelector('#upload-summary').textContent,
  }));
  await page.screenshot({ path: join(shots, 'uploads-waiting.png'), fullPage: true });
  const single = await singlesResult;
  console.log(`DONE ${JSON.stringify({ picked, first, second, whileWaiting, single, consoleErrors })}`);
} catch (err) {
  console.error(`console_uploads failed: ${err?.stack ?? err}`);
  if (page) {
    try {
      console.error(await page.evaluate(() => JSON.stringify({
        status: document.querySelector('#status')?.textContent,
        error: document.querySelector('#error')?.textContent,
        summary: document.querySelector('#upload-summary')?.textContent,
      })));
      await page.screenshot({ path: join(shots, 'uploads-failure.png'), fullPage: true });
    } catch {}
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}

function readdirCount(dir) {
  let n = 0;
  const pending = [dir];
  while (pending.length) {
    for (const e of readdirSync(pending.pop(), { withFileTypes: true })) {
      if (e.isDirectory()) pending.push(join(e.parentPath ?? e.path, e.name));
      else n++;
    }
  }
  return n;
}
