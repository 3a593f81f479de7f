// The browser tests' accessibility check: axe-core (the npm package, read from node_modules,
// so nothing is fetched from elsewhere) run in the page as it is now. Its source goes in through
// page.evaluate, which the console's CSP (script-src 'self', no inline script) does not govern:
// a <script> tag added to the page would be refused, as it should be.
//
// checkAxe(page, label) fails on any serious or critical violation (WCAG 2.x A and AA rules and
// axe's best practices), naming each rule, its help text and the offending nodes; it returns
// every violation found (the minor and moderate ones too) for the report.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const FAILING = new Set(['serious', 'critical']);

/** Runs axe on the page; throws when it finds a serious or critical violation. */
export async function checkAxe(page, label) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    await page.evaluate(AXE_SOURCE);
  }
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
      resultTypes: ['violations'],
    });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary?.split('\n').slice(1).join(' ').trim()}`),
    }));
  });
  const failing = violations.filter((v) => FAILING.has(v.impact));
  if (failing.length > 0) {
    const text = failing.map((v) => `  ${v.impact} ${v.id} (${v.help}):\n    ${v.nodes.join('\n    ')}`).join('\n');
    throw new Error(`axe found ${failing.length} serious or critical violation(s) on ${label}:\n${text}`);
  }
  return violations.map(({ id, impact }) => ({ id, impact }));
}
