// The console's organize options, plan, report, exports, duplicate groups and Operations
// screen in real headless Chromium (playwright-core), driven by tests/api/console.rs, which
// put the files in EMAIL's inbox/ (two with the same content, one *.log) and checks what this
// script reports against the server and the disk:
//
//  1. the organize options show the server's defaults; a bad layout template is refused with
//     the server's field error next to the template box (not in the general error box);
//  2. a dry run with duplicates moved to _duplicates/ and `*.log` left out: the plan marks the
//     duplicate and names the category and what decided each destination;
//  3. apply: the report with its chart, the three exports saved by the browser (SAVE_DIR),
//     and the duplicate groups;
//  4. undo (regression checks): the plan is re-read (UNDONE, as the server says) and the
//     applied report leaves the screen; then an error: no stale "Undone…" status under it;
//  5. a second dry run, cancelled from the Operations screen; a third organize, applied and
//     then undone from the Operations screen; filters (kind, state) and pages of 2;
//  6. reopening the first operation from the list shows its records and report;
//  7. at 390 px the plan table scrolls inside its card instead of overflowing it; screenshots
//     of every screen at 1100 and 360 px (<screen>-<width>.png);
//  8. an apply of bulk/ cancelled with the Cancel button while it moves files, then undone.
//
// Usage: node console_operations.mjs CONSOLE_URL EMAIL SAVE_DIR SCREENSHOT_DIR
// Prints `DONE <json>` with what the page showed; exits non-zero on any failure.

import { join } from 'node:path';
import { launchChromium } from './chromium.mjs';

const [consoleUrl, email, saveDir, shots] = process.argv.slice(2);
if (!shots) {
  console.error('usage: console_operations.mjs CONSOLE_URL EMAIL SAVE_DIR SCREENSHOT_DIR');
  process.exit(2);
}
const PASSWORD = 'correct horse battery';
const TIMEOUT = 60_000; // only prevents hangs
const DESKTOP = 1100;
const consoleErrors = [];

const browser = await launchChromium();
const context = await browser.newContext({ acceptDownloads: true, viewport: { width: DESKTOP, height: 1000 } });
const page = await context.newPage();
page.setDefaultTimeout(TIMEOUT);
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (err) => consoleErrors.push(String(err)));

async function shot(screen, width) {
  await page.screenshot({ path: join(shots, `${screen}-${width}.png`), fullPage: true });
}

const text = (selector) => page.evaluate((s) => document.querySelector(s)?.textContent ?? null, selector);
const generalError = () => page.evaluate(() => {
  const box = document.querySelector('#error');
  return box.hidden ? '' : box.textContent;
});
const waitStatus = (prefix) => page.waitForFunction(
  (p) => document.querySelector('#status').textContent.startsWith(p) || !document.querySelector('#error').hidden, prefix);

/** Throws with the page's error when an action failed instead of reaching `prefix`. */
async function expectStatus(prefix) {
  await waitStatus(prefix);
  const error = await generalError();
  if (error) throw new Error(`waiting for "${prefix}": the page says ${error}`);
  return text('#status');
}

/** The plan table as shown: original path → what each column says. */
const planRows = () => page.$$eval('#plan tbody tr.record', (rows) => rows.map((r) => ({
  path: r.dataset.path,
  to: r.cells[1].textContent,
  category: r.cells[2].textContent,
  status: r.dataset.status,
  statusText: r.cells[3].textContent,
  duplicateOf: r.dataset.duplicateOf ?? '',
  duplicateText: r.cells[4].textContent,
  marked: r.classList.contains('duplicate'),
  decidedBy: r.cells[5].textContent,
})));

/** The Operations screen's rows. */
const operationRows = () => page.$$eval('#operation-list tbody tr.operation', (rows) => rows.map((r) => ({
  name: r.dataset.name,
  kind: r.dataset.kind,
  state: r.dataset.state,
  buttons: [...r.querySelectorAll('td.actions button')].map((b) => b.textContent),
})));

async function showOperations() {
  await page.click('#screens button[data-screen="operations"]');
  await page.waitForSelector('#operations-screen', { state: 'visible' });
}

/** Sets the filters and shows the first page; waits for the list to be re-read. */
async function filter({ state = '0', kind = '0', size = '25' } = {}) {
  await page.selectOption('#ops-state', state);
  await page.selectOption('#ops-kind', kind);
  await page.fill('#ops-page-size', size);
  await page.evaluate(() => { document.querySelector('#ops-page').textContent = ''; });
  await page.click('#ops-show');
  await page.waitForFunction(() => document.querySelector('#ops-page').textContent === 'Page 1' || !document.querySelector('#error').hidden);
  if (await generalError()) throw new Error(`filtering: ${await generalError()}`);
  return operationRows();
}

async function preview() {
  await page.evaluate(() => { document.querySelector('#op-state').dataset.state = ''; });
  await page.click('#preview');
  await expectStatus('Planned');
  return { name: await text('#op-name'), rows: await planRows() };
}

async function apply() {
  await page.click('#apply');
  await expectStatus('Moved');
  await page.waitForSelector('#report', { state: 'visible' });
}

/** How the plan's card and its scrolling box sit at the current width. */
const planBox = () => page.evaluate(() => {
  const card = document.querySelector('#organize').getBoundingClientRect();
  const box = document.querySelector('#plan').closest('.table-scroll');
  const rect = box.getBoundingClientRect();
  return {
    viewport: window.innerWidth,
    cardRight: card.right,
    boxRight: rect.right,
    boxScrollWidth: box.scrollWidth,
    boxClientWidth: box.clientWidth,
    tableWidth: document.querySelector('#plan').getBoundingClientRect().width,
    overflowX: getComputedStyle(box).overflowX,
  };
});

try {
  await page.goto(consoleUrl);
  await page.waitForSelector('#login:not([disabled])');
  await page.fill('#email', email);
  await page.fill('#password', PASSWORD);
  await page.click('#login');
  await page.waitForSelector('#app:not([hidden]), #error:not([hidden])');
  if (!(await page.isVisible('#app'))) throw new Error(`signing in failed: ${await generalError()}`);
  await page.waitForSelector('#listing tbody tr');
  const emptyPlan = await page.$$eval('#plan tbody tr', (rows) => rows.map((r) => ({ cls: r.className, text: r.textContent, span: r.cells[0].colSpan })));

  // 1. The options with their defaults, then a template the server refuses.
  await page.click('#organize-options summary');
  const defaults = await page.evaluate(() => Object.fromEntries(
    ['op-kind', 'layout-template', 'duplicate-policy', 'conflict-policy', 'apply-rules', 'include-globs', 'exclude-globs']
      .map((id) => [id, document.getElementById(id).value])));
  await page.fill('#source', 'inbox');
  await page.fill('#destination', 'sorted');
  await page.fill('#layout-template', '{nope}/{name}');
  await page.evaluate(() => { document.querySelector('#status').textContent = ''; });
  await page.click('#preview');
  const slot = '#organize-form .field-error[data-field="operation.layout_template"]';
  await page.waitForSelector(`${slot}:not([hidden])`);
  await waitStatus('Nothing was created');
  const badTemplate = {
    field: await page.getAttribute(slot, 'data-violation'),
    text: await text(slot),
    visible: await page.isVisible(slot),
    generalError: await generalError(),
    status: await text('#status'),
  };
  await shot('organize', DESKTOP);

  // 2. A dry run with options.
  await page.fill('#layout-template', '{category}/{name}');
  await page.selectOption('#duplicate-policy', 'MOVE_TO_DUPLICATES_FOLDER');
  await page.fill('#exclude-globs', '*.log');
  const planned = await preview();
  const fieldErrorsAfter = await page.$$eval('#organize-form .field-error:not([hidden])', (s) => s.length);
  await shot('plan', DESKTOP);

  // 3. Apply: report, exports, duplicate groups.
  await apply();
  const applied = await planRows();
  const chart = await page.$$eval('#category-chart rect.bar', (bars) => bars.map((b) => [b.dataset.category, Number(b.dataset.count)]));
  const report = {
    operation: await page.getAttribute('#report', 'data-operation'),
    filesMoved: await page.getAttribute('#report', 'data-files-moved'),
    summary: await text('#report-summary'),
  };
  const exports = {};
  for (const format of ['csv', 'json', 'html']) {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click(`#export-${format}`)]);
    const name = download.suggestedFilename();
    await download.saveAs(join(saveDir, name));
    await expectStatus(`Exported ${name}`);
    exports[format] = name;
  }
  const duplicates = {
    total: await page.getAttribute('#duplicates-summary', 'data-total'),
    rows: await page.$$eval('#duplicate-groups tbody tr.dup-file', (rows) => rows.map((r) => ({
      hash: r.dataset.hash, path: r.dataset.path, now: r.cells[2].textContent, kept: r.dataset.kept === 'true',
    }))),
  };
  await shot('report', DESKTOP);
  await page.locator('#report').screenshot({ path: join(shots, `duplicates-${DESKTOP}.png`) });

  // 4. Undo on the organize screen: the plan is re-read, the applied report leaves.
  await page.click('#undo');
  const undoneStatus = await expectStatus('Undone');
  const afterUndo = {
    rows: await planRows(),
    reportVisible: await page.isVisible('#report'),
    reportOperation: await page.getAttribute('#report', 'data-operation'),
    status: undoneStatus,
    opName: await text('#op-name'),
  };
  await shot('undone', DESKTOP);
  // An error next: the "Undone…" line must not stay under it.
  await page.fill('#path', 'no/such/folder');
  await page.click('#browse');
  await page.waitForSelector('#error:not([hidden])');
  const afterError = { error: await generalError(), status: await text('#status') };
  await shot('error', DESKTOP);
  await page.fill('#path', '');
  await page.click('#browse');
  await page.waitForSelector('#error', { state: 'hidden' });

  // 5. A second dry run, cancelled from the list.
  const second = await preview();
  await showOperations();
  await filter();
  const listed = await operationRows();
  await shot('operations', DESKTOP);
  await page.click(`#operation-list tr.operation[data-name="${second.name}"] button.cancel`);
  await expectStatus(`Cancel requested: ${second.name}`);
  const cancelledRow = (await operationRows()).find((r) => r.name === second.name);

  // A third organize, applied, then undone from the list.
  await page.click('#screens button[data-screen="files"]');
  await page.selectOption('#duplicate-policy', 'REPORT_ONLY');
  const third = await preview();
  await apply();
  await showOperations();
  await filter();
  const thirdButtons = (await operationRows()).find((r) => r.name === third.name).buttons;
  await page.click(`#operation-list tr.operation[data-name="${third.name}"] button.undo`);
  const undoneFromList = await expectStatus(`Undone ${third.name}`);
  const all = await operationRows();

  // Filters and pages.
  const undos = await filter({ kind: '3' });
  const cancelled = await filter({ state: '8' });
  await filter({ size: '2' });
  const pages = [await operationRows()];
  const olderEnabled = [];
  while (!(await page.isDisabled('#ops-older'))) {
    olderEnabled.push(pages.length);
    const before = await text('#ops-page');
    await page.click('#ops-older');
    await page.waitForFunction((b) => document.querySelector('#ops-page').textContent !== b, before);
    pages.push(await operationRows());
  }
  await page.click('#ops-newer');
  await page.waitForFunction((n) => document.querySelector('#ops-page').textContent === `Page ${n}`, pages.length - 1);
  const backOne = await operationRows();
  const paging = { pages: pages.map((p) => p.map((r) => r.name)), backOne: backOne.map((r) => r.name) };
  await filter();

  // 6. Reopen the first operation.
  await page.click(`#operation-list tr.operation[data-name="${planned.name}"] button.open`);
  await waitStatus(`Operation ${planned.name}`);
  await page.waitForSelector('#report', { state: 'visible' });
  const reopened = {
    screen: await page.getAttribute('#app', 'data-screen'),
    opName: await text('#op-name'),
    state: await page.getAttribute('#op-state', 'data-state'),
    rows: await planRows(),
    reportOperation: await page.getAttribute('#report', 'data-operation'),
    reportUndone: await text('#report-undone'),
    undoDisabled: await page.isDisabled('#undo'),
  };

  // 7. Narrow screens.
  await page.setViewportSize({ width: 390, height: 900 });
  const at390 = await planBox();
  await shot('plan', 390);
  await page.setViewportSize({ width: 360, height: 900 });
  const at360 = await planBox();
  await shot('organize', 360);
  await page.locator('#report').screenshot({ path: join(shots, 'report-360.png') });
  await showOperations();
  await filter();
  await shot('operations', 360);
  const operationsAt360 = await page.evaluate(() => {
    const card = document.querySelector('#operations-screen').getBoundingClientRect();
    const box = document.querySelector('#operation-list').closest('.table-scroll').getBoundingClientRect();
    return { cardRight: card.right, boxRight: box.right, viewport: window.innerWidth };
  });

  // 8. Cancel while applying (the server moves MOVES_PER_SECOND files a second): the page says
  // how far it got, and Undo moves those files back.
  await page.setViewportSize({ width: DESKTOP, height: 1000 });
  await page.click('#screens button[data-screen="files"]');
  await page.fill('#source', 'bulk');
  await page.fill('#destination', 'bulk-sorted');
  const bulk = await preview();
  await page.click('#apply');
  await page.waitForSelector('#op-state[data-state="APPLYING"]');
  await page.waitForFunction(() => Number(document.querySelector('#progress').getAttribute('aria-valuenow')) > 0);
  await page.click('#cancel');
  const cancelStatus = await expectStatus('Cancelled');
  const cancelledApply = {
    name: bulk.name,
    state: await page.getAttribute('#op-state', 'data-state'),
    status: cancelStatus,
    undoEnabled: !(await page.isDisabled('#undo')),
    cancelEnabled: !(await page.isDisabled('#cancel')),
    statuses: (await planRows()).reduce((n, r) => ({ ...n, [r.status]: (n[r.status] ?? 0) + 1 }), {}),
  };
  await shot('cancelled', DESKTOP);
  await page.click('#undo');
  cancelledApply.undone = await expectStatus('Undone');

  console.log(`DONE ${JSON.stringify({
    emptyPlan, defaults, badTemplate, planned, fieldErrorsAfter, applied, chart, report, exports, duplicates,
    afterUndo, afterError, cancelledApply, second: second.name, listed, cancelledRow, third: third.name, thirdButtons,
    undoneFromList, all, undos, cancelled, paging, olderEnabled, reopened, at390, at360, operationsAt360,
    consoleErrors,
  })}`);
} catch (err) {
  await page.screenshot({ path: join(shots, 'operations-failed.png'), fullPage: true }).catch(() => {});
  console.error(`the page showed: status ${JSON.stringify(await text('#status').catch(() => null))}, error ${JSON.stringify(await generalError().catch(() => null))}`);
  console.error(err);
  process.exitCode = 1;
} finally {
  await browser.close();
}
