// Opens a report in headless Chromium (Debian's `chromium`, driven by playwright-core) and
// prints what happened as one JSON object: console errors and warnings, page errors, every
// request the page made, dialogs (an executed alert() would be one), the page's text and how
// many SVG charts it drew. Saves a full-page screenshot.
//
// node tests/report_browser.cjs REPORT.html SCREENSHOT.png   (NODE_PATH: playwright-core's node_modules)
const { chromium } = require('playwright-core');
const { pathToFileURL } = require('url');

async function main() {
  const [report, screenshot] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.VOXLAKE_CHROMIUM || '/usr/bin/chromium',
    // The machine has no network: Chromium's own background traffic is switched off.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const seen = { console: [], errors: [], requests: [], dialogs: [] };
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') seen.console.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => seen.errors.push(String(e)));
  page.on('request', (r) => seen.requests.push(r.url()));
  page.on('dialog', async (d) => { seen.dialogs.push(d.message()); await d.dismiss(); });
  seen.url = pathToFileURL(report).href;
  await page.goto(seen.url, { waitUntil: 'load' });
  seen.text = await page.innerText('body');
  seen.svgs = await page.locator('svg').count();
  seen.scripts = await page.locator('script').count();
  await page.screenshot({ path: screenshot, fullPage: true });
  await browser.close();
  console.log(JSON.stringify(seen));
}

main().catch((e) => { console.error(e); process.exit(1); });
