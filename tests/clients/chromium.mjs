// The one way the browser tests start Chromium: Debian's (or CHROMIUM_PATH), headless, driven by
// playwright-core, with the background traffic (component updates, sync) turned off so a test's
// request log holds only what the page asked for.

import { chromium } from 'playwright-core';

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}
