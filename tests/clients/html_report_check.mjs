// Opens an HTML report export in real headless Chromium (Debian's, driven by
// playwright-core) and reports what a person would see, as JSON on stdout.
//
// Usage: node html_report_check.mjs REPORT.html SCREENSHOT.png [CONTENT_SECURITY_POLICY]
//
// The page is served from an intercepted http://report.test/ URL with the
// Content-Type (and, when given, the Content-Security-Policy) the REST sidecar
// sends, so it renders under the same rules as a real download viewed in a
// browser. Nothing leaves the machine: every other request is refused and
// counted. Prints {bars: [{category, bytes, width, fill}], chart: {width,
// height}, groups, duplicatesText, injectedImages, pwned, dialogs,
// externalRequests, consoleErrors, title, headFirst, thBackground,
// cspViolations, probe}.
//
// cspViolations and consoleErrors are those of the page's load (the
// `securitypolicyviolation` events and console errors). Then a probe plays a markup injection that got past escaping: it
// appends an <img> pointing off the machine and reports whether a policy
// refused it ({blocked, directive}) or the request was attempted.

import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [htmlPath, screenshotPath, csp] = process.argv.slice(2);
if (!htmlPath || !screenshotPath) {
  console.error('usage: html_report_check.mjs REPORT.html SCREENSHOT.png [CSP]');
  process.exit(2);
}
const html = readFileSync(htmlPath);
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  const dialogs = [];
  const consoleErrors = [];
  let externalRequests = 0;
  page.on('dialog', async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  const cspViolations = [];
  await page.exposeFunction('__cspViolation', (v) => cspViolations.push(v));
  await page.addInitScript(() => document.addEventListener('securitypolicyviolation', (e) => {
    window.__cspViolation({ directive: e.violatedDirective, blocked: e.blockedURI });
  }, true));
  await page.route('**/*', async (route) => {
    const url = route.request().url();
    if (url === 'http://report.test/') {
      const headers = { 'content-type': 'text/html; charset=utf-8' };
      if (csp) headers['content-security-policy'] = csp;
      await route.fulfill({ status: 200, headers, body: html });
    } else {
      externalRequests += 1;
      await route.abort();
    }
  });
  await page.goto('http://report.test/', { waitUntil: 'load' });
  const facts = await page.evaluate(() => {
    const chart = document.querySelector('#category-chart');
    const box = chart ? chart.getBoundingClientRect() : { width: 0, height: 0 };
    const bars = [...document.querySelectorAll('#category-chart rect.bar')].map((rect) => ({
      category: rect.dataset.category,
      bytes: Number(rect.dataset.bytes),
      width: rect.getBoundingClientRect().width,
      fill: getComputedStyle(rect).fill,
    }));
    const duplicates = document.querySelector('#duplicates');
    return {
      title: document.title,
      chart: { width: box.width, height: box.height },
      bars,
      groups: document.querySelectorAll('#duplicate-groups tr.group').length,
      keptFiles: [...document.querySelectorAll('#duplicate-groups li.kept')].map((li) => li.textContent),
      duplicatesText: duplicates ? duplicates.textContent : '',
      injectedImages: document.querySelectorAll('img').length,
      scripts: document.querySelectorAll('script').length,
      pwned: Boolean(window.__pwned),
      headFirst: document.head.firstElementChild?.outerHTML ?? null,
      thBackground: document.querySelector('th') ? getComputedStyle(document.querySelector('th')).backgroundColor : null,
    };
  });
  const atLoad = [...cspViolations];
  const errorsAtLoad = [...consoleErrors];
  const requestsBeforeProbe = externalRequests;
  const probe = await page.evaluate(() => new Promise((resolve) => {
    const done = (result) => { clearTimeout(timer); resolve(result); };
    const timer = setTimeout(() => done({ blocked: false }), 3000);
    document.addEventListener('securitypolicyviolation', (e) => done({ blocked: true, directive: e.effectiveDirective }), { once: true });
    const img = document.createElement('img');
    img.src = 'https://beacon.invalid/leak.png';
    img.onerror = () => setTimeout(() => done({ blocked: false, error: true }), 500);
    document.body.append(img);
  }));
  probe.requested = externalRequests > requestsBeforeProbe;
  externalRequests = requestsBeforeProbe;
  await page.screenshot({ path: screenshotPath, fullPage: true });
  console.log(JSON.stringify({ ...facts, dialogs, consoleErrors: errorsAtLoad, externalRequests, cspViolations: atLoad, probe }));
} finally {
  await browser.close();
}
