// A real browser (Debian's chromium, driven by playwright-core) against the embedded
// backend's pages: the checkout a `checkoutUrl` names and the portal a `portalUrl` names,
// as a customer uses them, and as a hostile site on another origin tries to (a form that
// posts to them, a frame that shows them).
//
//   node browser.mjs <checkoutUrl> <portalUrl>
//
// Prints one JSON line: what the browser saw at each step.
import http from 'node:http';
import { chromium } from 'playwright-core';

const [checkoutUrl, portalUrl] = process.argv.slice(2);
const report = {};

// The hostile site: another origin (another port) serving a page that frames the
// checkout and a page whose form posts to it on load.
const hostile = http.createServer((req, res) => {
  res.setHeader('content-type', 'text/html; charset=utf-8');
  if (req.url === '/frame') {
    res.end(`<!doctype html><iframe id="f" src="${checkoutUrl}" width="600" height="400"></iframe>`);
  } else if (req.url === '/forge-pay') {
    res.end(`<!doctype html><form id="f" method="post" action="${checkoutUrl}"></form>
      <script>document.getElementById('f').submit()</script>`);
  } else {
    res.statusCode = 404;
    res.end('no');
  }
});
await new Promise((resolve) => hostile.listen(0, '127.0.0.1', resolve));
const evil = `http://127.0.0.1:${hostile.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu'],
});
try {
  const page = await browser.newPage();
  const seen = [];
  page.on('console', (message) => seen.push(message.text()));

  // 1. Framed by another site: the browser refuses to show the checkout.
  await page.goto(`${evil}/frame`);
  await page.waitForTimeout(500);
  const frame = page.frames().find((f) => f !== page.mainFrame());
  let framedText = '';
  try {
    framedText = frame ? await frame.evaluate(() => document.body ? document.body.innerText : '') : '';
  } catch (err) {
    framedText = '';
  }
  report.framedShowsPayButton = framedText.includes('Pay');

  // 2. A form on another site posts to the checkout: refused, nothing bought.
  const [forged] = await Promise.all([
    page.waitForResponse((r) => r.url() === checkoutUrl && r.request().method() === 'POST'),
    page.goto(`${evil}/forge-pay`),
  ]);
  report.forgedStatus = forged.status();
  report.forgedBody = await forged.text();

  // 3. The customer opens the link and pays.
  const shown = await page.goto(checkoutUrl);
  report.pageStatus = shown.status();
  report.pageHeaders = shown.headers();
  report.pageText = await page.innerText('body');
  const [paid] = await Promise.all([
    page.waitForNavigation(),
    page.click('button[type=submit]'),
  ]);
  report.paidStatus = paid.status();
  report.paidText = await page.innerText('body');

  // 4. Back on the link later: a receipt, no second purchase.
  await page.goto(checkoutUrl);
  report.againText = await page.innerText('body');

  // 5. The portal: the purchase is listed; cancelling it from the page works.
  if (portalUrl) {
    const portal = await page.goto(portalUrl);
    report.portalStatus = portal.status();
    report.portalText = await page.innerText('body');
    const [cancelled] = await Promise.all([
      page.waitForNavigation(),
      page.click('button[type=submit]'),
    ]);
    report.cancelStatus = cancelled.status();
    report.cancelText = await page.innerText('body');
  }
  report.console = seen;
} catch (err) {
  report.error = String(err && err.stack || err);
} finally {
  await browser.close();
  hostile.close();
}
console.log(JSON.stringify(report));
