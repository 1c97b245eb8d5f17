// A real browser (Debian's chromium, driven by playwright-core) calling the routes of
// SolvaPay's React components from a frontend on another origin, as `@solvapay/react`'s
// HTTP transport does (a bearer token and `Content-Type: application/json`, so every
// call is preflighted): from the allowed origin the calls succeed, from any other the
// browser refuses to hand over the answer.
//
//   node react_cors.mjs <apiBase> <token> <allowedPort>
//
// Prints one JSON line: what each page's fetches saw.
import http from 'node:http';
import { chromium } from 'playwright-core';

const [apiBase, token, allowedPort] = process.argv.slice(2);
const report = {};

const frontend = http.createServer((req, res) => {
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.end('<!doctype html><title>frontend</title>');
});
const listen = (server, port) => new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const allowed = frontend;
const other = http.createServer(frontend.listeners('request')[0]);
await listen(allowed, Number(allowedPort));
await listen(other, 0);

// What the transport does: GET check-purchase, POST create-checkout-session.
const calls = async ({ base, token }) => {
  const headers = { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` };
  const out = {};
  for (const [name, method, route, body] of [
    ['checkPurchase', 'GET', 'check-purchase', undefined],
    ['checkout', 'POST', 'create-checkout-session', '{}'],
  ]) {
    try {
      const res = await fetch(`${base}/api/${route}`, { method, headers, body });
      out[name] = { status: res.status, body: await res.json() };
    } catch (err) {
      out[name] = { error: String(err) };
    }
  }
  return out;
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu'],
});
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${allowedPort}/`);
  report.allowed = await page.evaluate(calls, { base: apiBase, token });
  await page.goto(`http://127.0.0.1:${other.address().port}/`);
  report.other = await page.evaluate(calls, { base: apiBase, token });
} catch (err) {
  report.error = String(err && err.stack || err);
} finally {
  await browser.close();
  allowed.close();
  other.close();
}
console.log(JSON.stringify(report));
