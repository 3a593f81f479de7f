// The console's rules and automations screens in real headless Chromium (playwright-core),
// driven by tests/api/console.rs:
//
//  1. upload UPLOAD_DIR's files into inbox/; on the Rules screen create a rule (name glob
//     `invoice-*` → move to `Invoices/{name}`) and watch the live preview mark the invoice as
//     matched by the rule being edited (and the other files as matched by none); save it;
//  2. change the condition to a bad regular expression: the server's field error appears next
//     to the condition (from the live preview, then again from Save);
//  3. a stale edit: the rule is changed behind the editor's back (a second page renames it),
//     then Save says the rule was changed elsewhere instead of overwriting it;
//  4. organize inbox → sorted on the files screen (dry run, apply): the rule placed the invoice;
//  5. on the Automations screen create an arrival automation on `drop` → `filed`, upload a file
//     into `drop`, refresh until the automation lists the operation it produced with a last
//     run, and open the operation from its link.
//
// Usage: node console_rules.mjs CONSOLE_URL UPLOAD_DIR EMAIL SCREENSHOT_DIR
// Prints `DONE <json>` with what the page showed; exits non-zero on any failure.

import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkAxe } from './axe.mjs';
import { launchChromium } from './chromium.mjs';

const [consoleUrl, uploadDir, email, shots] = process.argv.slice(2);
if (!shots) {
  console.error('usage: console_rules.mjs CONSOLE_URL UPLOAD_DIR EMAIL SCREENSHOT_DIR');
  process.exit(2);
}
const PASSWORD = 'correct horse battery';
const TIMEOUT = 60_000; // only prevents hangs
const consoleErrors = [];

const browser = await launchChromium();

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `rules-${name}.png`), fullPage: true });
}

async function open(login) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1200 } });
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (err) => consoleErrors.push(String(err)));
  await page.goto(consoleUrl);
  await page.waitForSelector(`${login}:not([disabled])`);
  await page.fill('#email', email);
  await page.fill('#password', PASSWORD);
  await page.click(login);
  await page.waitForSelector('#app:not([hidden]), #error:not([hidden])');
  if (!(await page.isVisible('#app'))) throw new Error(`signing in failed: ${await page.textContent('#error')}`);
  return page;
}

async function upload(page, dir, files) {
  await page.click('#screens button[data-screen="files"]');
  await page.fill('#upload-dir', dir);
  await page.selectOption('#upload-mode', 'files');
  await page.setInputFiles('#upload-file', files);
  await page.click('#upload');
  await page.waitForFunction(([d, n]) => document.querySelector('#status').textContent === `Uploaded ${n} file(s) into ${d}.`,
    [dir, files.length]);
}

/** The live preview's rows: path → what the row says. */
function previewRows(page) {
  return page.$$eval('#rule-preview tr.preview', (rows) => Object.fromEntries(rows.map((r) => [r.dataset.path, {
    matched: r.dataset.matched, rule: r.dataset.rule, why: r.cells[2].textContent, to: r.cells[3].textContent,
  }])));
}

const generalError = (page) => page.evaluate(() => {
  const box = document.querySelector('#error');
  return box.hidden ? '' : box.textContent;
});

let page;
try {
  page = await open('#register');
  const uploads = readdirSync(uploadDir).map((name) => join(uploadDir, name));
  await upload(page, 'inbox', uploads);

  // 1. A new rule, previewed live as it is typed, then saved.
  await page.click('#screens button[data-screen="rules"]');
  await page.waitForSelector('#rules-screen', { state: 'visible' });
  await page.fill('#rule-preview-folder', 'inbox');
  await page.click('#rule-new');
  await page.fill('#rule-display-name', 'Invoices');
  await page.fill('#rule-conditions .condition[data-index="0"] input.a', 'invoice-*');
  await page.selectOption('#rule-action-kind', 'move');
  await page.fill('#rule-action-value', 'Invoices/{name}');
  await page.waitForSelector('#rule-preview tr.preview[data-path="inbox/invoice-1.pdf"][data-matched="draft"]');
  const draftPreview = await previewRows(page);
  await shot(page, '1-live-preview');
  // The editor open, with a condition and the live preview (the walk in console_account.mjs
  // sees the rules screen only as a list).
  await checkAxe(page, 'the rule editor');
  await page.click('#rule-save');
  await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Saved rule "Invoices"'));
  await page.waitForSelector('#rule-list tr.rule[data-display-name="Invoices"]');
  const listed = await page.$$eval('#rule-list tr.rule', (rows) => rows.map((r) => r.dataset.displayName));

  // 2. A bad regular expression: the server's field error next to the condition.
  await page.selectOption('#rule-conditions .condition[data-index="0"] select.kind', 'nameRegex');
  await page.fill('#rule-conditions .condition[data-index="0"] input.a', '(unclosed');
  const slot = '#rule-conditions .condition[data-index="0"] .field-error';
  await page.waitForSelector(`${slot}:not([hidden])`);
  const fromPreview = { field: await page.getAttribute(slot, 'data-violation'), text: await page.textContent(slot) };
  await page.evaluate(() => { document.querySelector('#status').textContent = ''; });
  await page.click('#rule-save');
  await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('The rule was not saved'));
  const fromSave = {
    field: await page.getAttribute(slot, 'data-violation'),
    text: await page.textContent(slot),
    visible: await page.isVisible(slot),
    generalError: await generalError(page),
  };
  await shot(page, '2-bad-regex');

  // 3. A stale edit: back to the glob, but the rule was renamed elsewhere meanwhile.
  await page.selectOption('#rule-conditions .condition[data-index="0"] select.kind', 'nameGlob');
  await page.fill('#rule-conditions .condition[data-index="0"] input.a', 'invoice-*');
  const other = await open('#login');
  await other.click('#screens button[data-screen="rules"]');
  await other.click('#rule-list tr.rule[data-display-name="Invoices"] button.edit');
  await other.fill('#rule-display-name', 'Invoices (renamed elsewhere)');
  await other.click('#rule-save');
  await other.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Saved rule'));
  await other.close();
  await page.click('#rule-save');
  await page.waitForSelector('#rule-stale:not([hidden])');
  const stale = { text: await page.textContent('#rule-stale'), generalError: await generalError(page) };
  await shot(page, '3-stale');
  // Opened again: the current version, saved under its own etag.
  await page.click('#rule-list tr.rule[data-display-name="Invoices (renamed elsewhere)"] button.edit');
  await page.fill('#rule-display-name', 'Invoices');
  await page.click('#rule-save');
  await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Saved rule "Invoices"'));
  await page.click('#rule-cancel');

  // 4. An organize applies the rule.
  await page.click('#screens button[data-screen="files"]');
  await page.fill('#source', 'inbox');
  await page.fill('#destination', 'sorted');
  await page.click('#preview');
  await page.waitForSelector('#op-state[data-state="PLANNED"]');
  await page.waitForFunction((n) => document.querySelectorAll('#plan tr.record').length === n, uploads.length);
  const plan = await page.$$eval('#plan tr.record', (rows) => Object.fromEntries(rows.map((r) => [r.cells[0].textContent, r.cells[1].textContent])));
  // What decided each destination (the plan's "Decided by" column) and the rule's name.
  const decidedBy = await page.$$eval('#plan tr.record', (rows) => Object.fromEntries(rows.map((r) => [r.dataset.path, { text: r.cells[5].textContent, rule: r.dataset.rule ?? '' }])));
  await page.click('#apply');
  await page.waitForSelector('#op-state[data-state="SUCCEEDED"]');
  await shot(page, '4-organized');

  // 5. An arrival automation, a file uploaded into its folder, its operation listed.
  await page.click('#screens button[data-screen="automations"]');
  await page.fill('#automation-display-name', 'Sort drops');
  await page.selectOption('#automation-kind', 'arrival');
  await page.fill('#automation-folder', 'drop');
  await page.fill('#automation-quiet', '1');
  await page.fill('#automation-destination', 'filed');
  await page.click('#automation-create');
  await page.waitForSelector('article.automation[data-kind="arrival"]');
  const card = 'article.automation[data-kind="arrival"]';
  const before = {
    kind: await page.textContent(`${card} .kind dd`),
    trigger: await page.textContent(`${card} .trigger dd`),
    lastRun: await page.textContent(`${card} .last-run dd`),
    runs: await page.$$eval(`${card} a.operation`, (links) => links.length),
  };
  const dropped = join(shots, 'invoice-9.pdf');
  writeFileSync(dropped, '%PDF-1.4 dropped invoice\n');
  await upload(page, 'drop', [dropped]);
  await page.click('#screens button[data-screen="automations"]');
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    await page.click('#automations-refresh');
    await page.waitForTimeout(300);
    const done = await page.$$eval(`${card} a.operation[data-state="SUCCEEDED"]`, (links) => links.length);
    if (done > 0) break;
    if (Date.now() > deadline) throw new Error(`no finished run listed: ${await page.textContent(card)}`);
  }
  const after = {
    lastRun: await page.textContent(`${card} .last-run dd`),
    runCount: await page.getAttribute(card, 'data-run-count'),
    lastError: await page.textContent(`${card} .last-error dd`),
    operations: await page.$$eval(`${card} a.operation`, (links) => links.map((a) => a.dataset.name)),
  };
  await shot(page, '5-automation');
  // Pause and resume from the card.
  await page.click(`${card} button.pause`);
  await page.waitForSelector(`${card}[data-paused="true"]`);
  const pausedState = await page.textContent(`${card} .state dd`);
  await page.click(`${card} button.resume`);
  await page.waitForSelector(`${card}[data-paused="false"]`);
  // The link opens the operation on the files screen.
  await page.click(`${card} a.operation`);
  // The status line is set last, once the records are shown.
  await page.waitForFunction((name) => document.querySelector('#status').textContent.startsWith(`Operation ${name}:`), after.operations[0]);
  const opened = {
    name: await page.textContent('#op-name'),
    state: await page.getAttribute('#op-state', 'data-state'),
    records: await page.$$eval('#plan tr.record', (rows) => rows.map((r) => [r.cells[0].textContent, r.cells[1].textContent])),
  };
  await shot(page, '6-opened');

  console.log(`DONE ${JSON.stringify({ draftPreview, listed, fromPreview, fromSave, stale, plan, decidedBy, before, after, pausedState, opened, consoleErrors })}`);
} catch (err) {
  if (page) {
    try {
      console.error(`the page showed: status=${JSON.stringify(await page.textContent('#status'))} error=${JSON.stringify(await generalError(page))}`);
      await shot(page, 'failure');
    } catch (inner) {
      console.error(`could not inspect the page: ${inner}`);
    }
  }
  console.error(`console errors: ${JSON.stringify(consoleErrors)}`);
  throw err;
} finally {
  await browser.close();
}
process.exit(0);
