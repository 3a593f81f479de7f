// Issue 22's account and file screens of the console in real headless Chromium (playwright-core),
// driven by tests/api/console.rs, which registered EMAIL (an administrator) and put inbox/
// notes.txt, todo.txt and table.csv in its storage:
//
//  1. sign in; the access token the page sends is in neither localStorage nor sessionStorage
//     (nor a cookie); a reload keeps the session (the refresh token, rotated on boot);
//  2. organize inbox → sorted (so that search has records); download a file from the listing
//     (its bytes), delete two files to the trash;
//  3. Trash: restore one (back in the listing), empty the trash of the other (two clicks);
//  4. Search: by name, and a too-short name shows the server's field error next to the field;
//  5. Categories: create one, edit it (the list shows the change), a category with neither
//     extensions nor globs shows the field error;
//  6. API keys: create a files.read key: the secret is shown once with a working Copy button,
//     and is gone from the page once dismissed or the screen is left; create and revoke another;
//  7. Usage: storage against the quota; the rate-limit counters (an administrator);
//  8. every screen of the nav, at 1100 and at 360 px wide: a screenshot
//     (SCREENSHOT_DIR/walk-<screen>-<width>.png; the flow tests keep <screen>-<width>.png), axe (no serious or critical violation) and nothing
//     wider than the window;
//  9. Profile: the display name; a wrong current password and differing new ones are refused
//     next to the fields; then the password is changed; logout, reload: signed out, nothing
//     kept; the old password is refused, the new one signs in.
//
// Usage: node console_account.mjs CONSOLE_URL EMAIL NEW_PASSWORD SCREENSHOT_DIR
// Prints `DONE <json>` with what the page showed; exits non-zero on any failure.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkAxe } from './axe.mjs';
import { launchChromium } from './chromium.mjs';

const [consoleUrl, email, newPassword, shots] = process.argv.slice(2);
if (!shots) {
  console.error('usage: console_account.mjs CONSOLE_URL EMAIL NEW_PASSWORD SCREENSHOT_DIR');
  process.exit(2);
}
const PASSWORD = 'correct horse battery';
const TIMEOUT = 60_000; // only prevents hangs
const DESKTOP = { width: 1100, height: 1000 };
const NARROW = { width: 360, height: 800 };
const consoleErrors = [];
const accessTokens = new Set();

const browser = await launchChromium();
const context = await browser.newContext({
  acceptDownloads: true,
  viewport: DESKTOP,
  permissions: ['clipboard-read', 'clipboard-write'],
});
const page = await context.newPage();
page.setDefaultTimeout(TIMEOUT);
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (err) => consoleErrors.push(String(err)));
page.on('request', (request) => {
  const auth = request.headers().authorization;
  if (auth?.startsWith('Bearer ')) accessTokens.add(auth.slice('Bearer '.length));
});

const text = (selector) => page.textContent(selector);
const statusIs = (prefix) => page.waitForFunction((p) => document.querySelector('#status').textContent.startsWith(p), prefix);
const generalError = () => page.evaluate(() => {
  const box = document.querySelector('#error');
  return box.hidden ? '' : box.textContent;
});

/** Opens a screen from the nav and waits until it has loaded (or failed to). */
async function screen(name) {
  await page.evaluate(() => { delete document.querySelector('#app').dataset.shown; });
  await page.click(`#screens button[data-screen="${name}"]`);
  await page.waitForSelector(`#app[data-shown="${name}"]`);
}

/**
 * The page's width against the window's, and the elements reaching past the window's right edge
 * outside a scrolling box (what made the page wider), for the failure message.
 */
function widthsOf() {
  const sticking = [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5
      && (!e.closest('.table-scroll') || ['absolute', 'fixed'].includes(getComputedStyle(e).position)))
    .map((e) => `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}${e.className ? `.${String(e.className).split(' ').join('.')}` : ''}`);
  return { page: document.documentElement.scrollWidth, window: window.innerWidth, sticking: sticking.slice(0, 10) };
}

/** Everything the page keeps in Web Storage and cookies. */
async function kept() {
  const storage = await page.evaluate(() => ({
    local: Object.fromEntries(Object.entries(localStorage)),
    session: Object.fromEntries(Object.entries(sessionStorage)),
  }));
  return { ...storage, cookies: (await context.cookies()).map((c) => c.name) };
}

async function signIn(password) {
  await page.waitForSelector('body[data-booted="true"]');
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.click('#login');
  await page.waitForSelector('#app:not([hidden]), #error:not([hidden])');
}

let step = 'start';
try {
  // 1. Sign in; the access token is not kept in storage; a reload keeps the session.
  step = 'sign in';
  await page.goto(consoleUrl);
  await signIn(PASSWORD);
  if (!(await page.isVisible('#app'))) throw new Error(`signing in failed: ${await generalError()}`);
  await page.waitForSelector('#listing tr.dir[data-path="inbox"]');
  const keptAfterLogin = await kept();
  step = 'reload';
  await page.reload();
  await page.waitForSelector('body[data-booted="true"]');
  const afterReload = {
    app: await page.isVisible('#app'),
    login: await page.isVisible('#login-panel'),
    who: await text('#who'),
    status: await text('#status'),
    error: await generalError(),
  };
  await page.waitForSelector('#listing tr.dir[data-path="inbox"]');
  const keptAfterReload = await kept();

  // 2. Organize inbox → sorted, download one file, delete two.
  step = 'organize';
  await page.fill('#source', 'inbox');
  await page.fill('#destination', 'sorted');
  await page.click('#preview');
  await page.waitForSelector('#op-state[data-state="PLANNED"]');
  await page.click('#apply');
  // The status line is set last, after the listing of the destination (which would otherwise
  // land after the folder typed below).
  await statusIs('Moved ');
  step = 'download';
  await page.fill('#path', 'sorted/Documents');
  await page.click('#browse');
  await page.waitForSelector('#listing tr.file[data-path="sorted/Documents/notes.txt"]');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click('#listing tr[data-path="sorted/Documents/notes.txt"] button.download'),
  ]);
  const savedPath = join(shots, 'downloaded-notes.txt');
  await download.saveAs(savedPath);
  await statusIs('Downloaded');
  const downloaded = { name: download.suggestedFilename(), text: readFileSync(savedPath, 'utf8'), status: await text('#status') };
  step = 'delete';
  await page.click('#listing tr[data-path="sorted/Documents/todo.txt"] button.delete');
  await statusIs('Moved sorted/Documents/todo.txt to the trash');
  await page.fill('#path', 'sorted/Spreadsheets');
  await page.click('#browse');
  await page.click('#listing tr[data-path="sorted/Spreadsheets/table.csv"] button.delete');
  await statusIs('Moved sorted/Spreadsheets/table.csv to the trash');
  const emptyFolder = await page.$$eval('#listing tbody tr', (rows) => rows.map((r) => [r.className, r.textContent]));
  const listingHeaders = await page.$$eval('#listing thead th', (cells) => cells.map((c) => c.textContent));

  // 3. Trash: restore one, empty the trash of the other.
  step = 'trash';
  await screen('trash');
  await page.waitForSelector('#trash tr.trash-item[data-path="sorted/Documents/todo.txt"]');
  const trashed = await page.$$eval('#trash tr.trash-item', (rows) => rows.map((r) => r.dataset.path).sort());
  await page.click('#trash tr.trash-item[data-path="sorted/Documents/todo.txt"] button.restore');
  await statusIs('Restored sorted/Documents/todo.txt');
  const afterRestore = await page.$$eval('#trash tr.trash-item', (rows) => rows.map((r) => r.dataset.path));
  await page.click('#trash-empty');
  const confirmText = await text('#trash-empty-confirm');
  await page.click('#trash-empty-confirm');
  await statusIs('Deleted 1 item(s) permanently');
  const afterEmpty = {
    rows: await page.$$eval('#trash tbody tr', (rows) => rows.map((r) => [r.className, r.textContent])),
    status: await text('#status'),
  };
  await screen('files');
  await page.fill('#path', 'sorted/Documents');
  await page.click('#browse');
  await page.waitForSelector('#listing tr.file[data-path="sorted/Documents/todo.txt"]');
  const restoredListing = await page.$$eval('#listing tr.file', (rows) => rows.map((r) => r.dataset.path).sort());

  // 4. Search.
  step = 'search';
  await screen('search');
  await page.fill('#search-name', 'no');
  await page.click('#search-run');
  const nameSlot = '#search-form .field-error[data-field="name_contains"]';
  await page.waitForSelector(`${nameSlot}:not([hidden])`);
  const shortName = { field: await page.getAttribute(nameSlot, 'data-violation'), text: await text(nameSlot), error: await generalError() };
  await page.fill('#search-name', 'notes');
  await page.click('#search-run');
  await statusIs('Search: ');
  const searched = await page.$$eval('#search-results tr.result', (rows) => rows.map((r) => [r.dataset.path, r.dataset.newPath, r.cells[2].textContent]));
  const slotAfter = await page.isVisible(nameSlot);

  // 5. Categories.
  step = 'categories';
  await screen('categories');
  await page.waitForSelector('#category-list tr.category[data-built-in="true"]');
  await page.fill('#category-display-name', 'Receipts');
  await page.fill('#category-extensions', 'rcpt');
  await page.fill('#category-color', '#2a6f3b');
  await page.click('#category-save');
  await statusIs('Saved category "Receipts"');
  await page.click('#category-list tr.category[data-display-name="Receipts"] button.edit');
  await page.fill('#category-extensions', 'rcpt, inv');
  await page.fill('#category-globs', '**/receipt-*');
  await page.click('#category-save');
  await page.waitForFunction(() => document.querySelector('#category-list tr.category[data-display-name="Receipts"]')?.cells[1].textContent === 'rcpt, inv');
  const receipts = await page.$eval('#category-list tr.category[data-display-name="Receipts"]', (r) => [...r.cells].slice(0, 3).map((c) => c.textContent));
  await page.fill('#category-display-name', 'Nothing');
  await page.click('#category-save');
  const extSlot = '#category-form .field-error[data-field="category.extensions"]';
  await page.waitForSelector(`${extSlot}:not([hidden])`);
  const badCategory = { field: await page.getAttribute(extSlot, 'data-violation'), text: await text(extSlot), error: await generalError() };
  await page.fill('#category-display-name', '');

  // 6. API keys: the secret once, with Copy; another key revoked.
  step = 'keys';
  await screen('keys');
  await page.fill('#key-display-name', 'ci-read');
  await page.check('#key-scopes input[value="files.read"]');
  await page.click('#key-create');
  await page.waitForSelector('#key-secret-box:not([hidden])');
  const secret = await text('#key-secret');
  // The Clipboard API writes only for the focused document: under load another test's
  // browser can hold the focus, and writeText then waits (the step once timed out here).
  await page.bringToFront();
  await page.click('#key-copy');
  await statusIs('Copied the secret');
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  const keyRow = await page.$eval('#key-list tr.api-key[data-display-name="ci-read"]', (r) => ({
    state: r.dataset.state, scopes: r.cells[2].textContent, prefix: r.cells[1].textContent, text: r.textContent,
  }));
  await page.click('#key-secret-done');
  const secretAfterDismiss = await page.evaluate((s) => document.documentElement.outerHTML.includes(s), secret);
  await page.fill('#key-display-name', 'to-revoke');
  await page.click('#key-create');
  await page.waitForSelector('#key-secret-box:not([hidden])');
  const revokedSecret = await text('#key-secret');
  await screen('files');
  await screen('keys');
  const secretAfterLeaving = await page.evaluate((s) => ({
    inPage: document.documentElement.outerHTML.includes(s),
    boxHidden: document.querySelector('#key-secret-box').hidden,
  }), revokedSecret);
  await page.click('#key-list tr.api-key[data-display-name="to-revoke"] button.revoke');
  await page.waitForSelector('#key-list tr.api-key[data-display-name="to-revoke"][data-state="revoked"]');
  const keyStates = await page.$$eval('#key-list tr.api-key', (rows) => Object.fromEntries(rows.map((r) => [r.dataset.displayName, r.dataset.state])));

  // 7. Usage and quota.
  step = 'usage';
  await screen('usage');
  await page.waitForSelector('#rate-counters tr.counter');
  const usage = {
    used: await page.getAttribute('#quota-text', 'data-used'),
    quota: await page.getAttribute('#quota-text', 'data-quota'),
    meter: await page.$eval('#quota-meter', (m) => m.value),
    counters: await page.$$eval('#rate-counters tr.counter', (rows) => rows.map((r) => ({ bucket: r.dataset.bucket, used: Number(r.dataset.used), limit: Number(r.dataset.limit) }))),
    states: await page.$$eval('#usage-states tbody tr', (rows) => rows.map((r) => r.textContent)),
  };

  // 8. Every screen at both widths: screenshot, axe, nothing wider than the window.
  step = 'walk';
  const screens = await page.$$eval('#screens button', (bs) => bs.map((b) => b.dataset.screen));
  const walked = {};
  for (const size of [DESKTOP, NARROW]) {
    await page.setViewportSize(size);
    for (const name of screens) {
      step = `walk ${name} at ${size.width}`;
      await screen(name);
      await page.screenshot({ path: join(shots, `walk-${name}-${size.width}.png`), fullPage: true });
      const violations = await checkAxe(page, `the ${name} screen at ${size.width} px`);
      const widths = await page.evaluate(widthsOf);
      walked[`${name}-${size.width}`] = { ...widths, violations, error: await generalError() };
    }
  }
  await page.setViewportSize(DESKTOP);
  // The sign-in screen too (a second page, so this one stays signed in).
  const signInPage = await browser.newPage({ viewport: NARROW });
  await signInPage.goto(consoleUrl);
  await signInPage.waitForSelector('body[data-booted="true"]');
  await signInPage.screenshot({ path: join(shots, 'walk-sign-in-360.png'), fullPage: true });
  walked['sign-in-360'] = {
    ...(await signInPage.evaluate(widthsOf)),
    violations: await checkAxe(signInPage, 'the sign-in screen at 360 px'),
  };
  await signInPage.close();

  // 9. Profile and password.
  step = 'profile';
  await screen('profile');
  await page.fill('#profile-display-name', 'Ada Lovelace');
  await page.click('#profile-save');
  await statusIs('Saved your display name');
  const who = await text('#who');
  await page.fill('#password-current', 'not my password');
  await page.fill('#password-new', newPassword);
  await page.fill('#password-repeat', newPassword);
  await page.click('#password-change');
  const currentSlot = '#password-form .field-error[data-field="current_password"]';
  await page.waitForSelector(`${currentSlot}:not([hidden])`);
  const wrongCurrent = { text: await text(currentSlot), error: await generalError() };
  await page.fill('#password-current', PASSWORD);
  await page.fill('#password-repeat', `${newPassword}x`);
  await page.click('#password-change');
  const repeatSlot = '#password-form .field-error[data-field="repeat"]';
  await page.waitForSelector(`${repeatSlot}:not([hidden])`);
  const mismatch = await text(repeatSlot);
  await page.fill('#password-repeat', newPassword);
  await page.click('#password-change');
  await statusIs('Password changed');
  const stillSignedIn = await page.isVisible('#app');

  step = 'logout';
  await page.click('#logout');
  await statusIs('Signed out');
  const keptAfterLogout = await kept();
  await page.reload();
  await page.waitForSelector('body[data-booted="true"]');
  const afterLogoutReload = { app: await page.isVisible('#app'), login: await page.isVisible('#login-panel'), kept: await kept() };
  step = 'old password';
  await signIn(PASSWORD);
  const oldPassword = { app: await page.isVisible('#app'), error: await generalError() };
  step = 'new password';
  await signIn(newPassword);
  await page.waitForSelector('#app:not([hidden])');
  const newPasswordWho = await text('#who');

  console.log(`DONE ${JSON.stringify({
    accessTokens: [...accessTokens], keptAfterLogin, afterReload, keptAfterReload, downloaded, emptyFolder, listingHeaders,
    trashed, afterRestore, confirmText, afterEmpty, restoredListing, shortName, searched, slotAfter, receipts,
    badCategory, secret, copied, keyRow, secretAfterDismiss, revokedSecret, secretAfterLeaving, keyStates, usage,
    screens, walked, who, wrongCurrent, mismatch, stillSignedIn, keptAfterLogout, afterLogoutReload, oldPassword,
    newPasswordWho, consoleErrors,
  })}`);
} catch (err) {
  console.error(`failed at step "${step}"`);
  try {
    console.error(`the page showed: status=${JSON.stringify(await text('#status'))} error=${JSON.stringify(await generalError())}`);
    await page.screenshot({ path: join(shots, 'account-failure.png'), fullPage: true });
  } catch (inner) {
    console.error(`could not inspect the page: ${inner}`);
  }
  console.error(`console errors: ${JSON.stringify(consoleErrors)}`);
  throw err;
} finally {
  await browser.close();
}
process.exit(0);
