// A real headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core for the
// status-page tests. Reads one JSON command per line on stdin, answers one JSON line each:
//   {"load": url, "screenshot": path?}  -> {"requests": [every URL the page asked for], "values": {data-key: text}}
//   {"text": path, "screenshot": path}  -> renders a captured terminal screen (text file) as an image
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const browser = await chromium.launch({
  executablePath,
  // The flags that keep Chromium from calling out on a closed network.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-default-apps'],
});
const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });

async function load(url, screenshot) {
  const page = await context.newPage();
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(url, { waitUntil: 'load' });
  const values = await page.$$eval('[data-key]', (els) => Object.fromEntries(els.map((e) => [e.dataset.key, e.textContent])));
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  await page.close();
  return { requests, values };
}

async function terminal(textFile, screenshot) {
  const page = await context.newPage();
  const text = readFileSync(textFile, 'utf8');
  await page.setContent('<pre id="t"></pre>');
  await page.$eval('#t', (el, t) => {
    el.textContent = t;
    Object.assign(el.style, { display: 'inline-block', margin: '0', padding: '12px 16px', background: '#1e1e1e',
      color: '#e6e6e6', font: '14px/1.3 "DejaVu Sans Mono", monospace' });
    document.body.style.margin = '0';
  }, text);
  await (await page.$('#t')).screenshot({ path: screenshot });
  await page.close();
  return { ok: true };
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line);
  try {
    const out = cmd.load ? await load(cmd.load, cmd.screenshot) : await terminal(cmd.text, cmd.screenshot);
    process.stdout.write(JSON.stringify(out) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ error: String(e) }) + '\n');
  }
}
await browser.close();
