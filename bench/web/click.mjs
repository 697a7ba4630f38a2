// bench/web: click → chart repainted in the app view, in headless Chromium (run.sh starts the
// stack and loads the Sales app). Signs in, builds a sheet with a filter pane on Region and a
// bar chart of Sales by Country (through the sheet editor, like a person), then clicks Region
// values in the filter pane ITERS times (each click toggles one value, so every click changes
// the bars) and measures, inside the page, from the mousedown to the first animation frame
// whose bars differ from the bars before the click ("repainted"), and to the frame after
// which they stay unchanged for 300 ms ("settled"). Prints one JSON line.
// Environment: TSR_URL, TSR_CREDS, APP_ID, ITERS (default 30), CHROMIUM, SHOTS (folder, optional).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '../../tests/e2e/package.json'));
const { chromium } = require('playwright-core');

const url = process.env.TSR_URL;
const creds = JSON.parse(readFileSync(process.env.TSR_CREDS, 'utf8'));
const appId = process.env.APP_ID;
const iters = Number(process.env.ITERS || 30);
const shots = process.env.SHOTS || '';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
  page.setDefaultTimeout(60_000);
  // Every QIX frame the page receives, with the wall clock (the page measures with it too).
  const frames = [];
  page.on('websocket', (ws) => ws.on('framereceived', () => frames.push(Date.now())));
  await page.goto(url + '/');
  await page.getByLabel('Email').fill(creds.user);
  await page.getByLabel('Password').fill(creds.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/hub');
  await page.goto(`${url}/apps/${appId}`);
  await page.getByLabel('New sheet name').fill(`bench ${Date.now()}`);
  await page.getByRole('button', { name: 'Create sheet' }).click();
  await page.waitForURL(/\/sheets\//);
  const ed = page.getByTestId('chart-editor');
  await ed.getByTestId('chart-type').selectOption('filterpane');
  await ed.getByTestId('add-dimension').selectOption('Region');
  await ed.getByTestId('add-chart').click();
  await page.locator('[data-testid=cell-filterpane]').waitFor();
  await ed.getByTestId('chart-type').selectOption('barchart');
  await ed.getByTestId('add-dimension').selectOption('Country');
  await ed.getByTestId('measure-expr').fill('Sum(Quantity*UnitPrice)');
  await ed.getByTestId('add-expr').click();
  await ed.getByTestId('add-chart').click();
  await page.locator('[data-testid=cell-barchart]').waitFor();
  await page.getByTestId('sheet-edit').click();
  // The bars' signature: sn-bar-chart paints bars on canvas and its labels (value labels on
  // the bars, axis ticks and names) in SVG in the same render, so the chart's text is what a
  // person sees change.
  await page.evaluate(() => {
    window.__barSig = () => document.querySelector('[data-testid=cell-barchart] .chart').innerText;
  });
  const start = Date.now();
  while (!(await page.evaluate(() => /Country \d\d/.test(window.__barSig())))) {
    if (Date.now() - start > 60_000) throw new Error('the bar chart did not draw');
    await sleep(200);
  }
  await page.locator('[data-testid=cell-filterpane] [data-testid="listbox.item"]').first().waitFor();
  if (shots) await page.screenshot({ path: join(shots, 'bench-web-before.png') });
  const first = [];
  const qix = [];
  const settled = [];
  for (let i = 0; i < iters; i++) {
    await sleep(250); // the filter pane re-sorts after a click: let it settle before aiming
    const name = `Region ${i % 8}`;
    const row = page.locator('[data-testid=cell-filterpane] [data-testid="listbox.item"]', { hasText: name }).first();
    const box = await row.boundingBox();
    // Arm the observer in the page: times from the mousedown to the first changed frame and to settling.
    const done = page.evaluate(
      () =>
        new Promise((resolve, reject) => {
          const before = window.__barSig();
          let t0 = null;
          let w0 = null;
          let tFirst = null;
          let last = before;
          let lastChange = null;
          const limit = performance.now() + 15_000;
          document.addEventListener(
            'mousedown',
            () => {
              t0 = performance.now();
              w0 = Date.now();
            },
            { once: true, capture: true },
          );
          let wFirst = null;
          const tick = () => {
            const now = performance.now();
            if (now > limit) return reject(new Error('no repaint within 15 s'));
            if (t0 !== null) {
              const sig = window.__barSig();
              if (sig !== last) {
                last = sig;
                lastChange = now;
                if (tFirst === null && sig !== before) {
                  tFirst = now;
                  wFirst = Date.now();
                }
              }
              if (tFirst !== null && now - lastChange > 300) return resolve({ first: tFirst - t0, settled: lastChange - t0, w0, wFirst });
            }
            requestAnimationFrame(tick);
          };
          requestAnimationFrame(tick);
        }),
    );
    await sleep(20);
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    const r = await done.catch(async (e) => {
      if (shots) await page.screenshot({ path: join(shots, 'bench-web-failed.png') });
      throw e;
    });
    // The last engine answer before the repaint: what the engine and the network took.
    const got = frames.filter((t) => t >= r.w0 && t <= r.wFirst);
    if (got.length) qix.push(got[got.length - 1] - r.w0);
    first.push(r.first);
    settled.push(r.settled);
  }
  if (shots) await page.screenshot({ path: join(shots, 'bench-web-after.png') });
  const pct = (a, p) => {
    const s = [...a].sort((x, y) => x - y);
    return Math.round(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] * 10) / 10;
  };
  console.log(JSON.stringify({ clicks: iters, first_p50: pct(first, 50), first_p95: pct(first, 95), qix_p50: pct(qix, 50), qix_p95: pct(qix, 95), settled_p50: pct(settled, 50), settled_p95: pct(settled, 95), first, settled }));
} finally {
  await browser.close();
}
