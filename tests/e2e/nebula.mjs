// The app view (web/src/pages/AppView.tsx) in headless Chromium against a real local stack
// (tests/integration/test_nebula.sh): nebula.js charts rendered by @nebula.js/stardust over
// enigma.js against Tessera's engine. Every step leaves a screenshot in $E2E_ARTIFACTS.
//
// Part 1 (issue 9): sign in, create a space and an app in it through the hub, load a small
// inline table, create a sheet with a filter pane, a bar chart, a KPI and a table from the data
// model's fields; a click on a bar selects its country and the filter pane's list object shows
// it (green selected, light grey alternative), the KPI follows; back, forward, lock and clear
// through the selections bar; the sheet is still there after a reload of the page.
// Part 2 (the Sales flow, when SALES_DIR names the 1.6M-row Sales CSVs): upload the four files
// into the space, set the load script, reload through POST /api/v1/reloads, build a sheet with
// a filter pane on Country and a bar chart of Sales by Region, check the bars against the
// reference answers, click a country and check the bar and the filter pane's states.
//
// Environment: TSR_URL, TSR_CREDS (credentials.json), E2E_ARTIFACTS, CHROMIUM,
// SALES_DIR (optional), SALES_REF (optional JSON {country, region, sales} for part 2).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { addChart, artifacts, assert, env, launchBrowser, screenshots, signInToHub, until as waitUntil } from './lib.mjs';

const url = env('TSR_URL');
const creds = JSON.parse(readFileSync(env('TSR_CREDS'), 'utf8'));
const snap = screenshots(artifacts());
const salesDir = process.env.SALES_DIR || '';

let passed = 0;
const t0 = Date.now();
function ok(msg) {
  passed++;
  console.log(`ok ${passed} - ${msg} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
}
/** until() whose timeout also shows the last filter pane rows seen (globalThis.lastRows). */
const until = (what, fn, ms) => waitUntil(what, fn, ms, () => JSON.stringify(globalThis.lastRows ?? ''));

/** Doc methods over the app's QIX WebSocket from inside the page (the session cookie authenticates it). */
async function qix(page, appId, steps) {
  return page.evaluate(
    async ({ appId, steps }) => {
      const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/app/${encodeURIComponent(appId)}`);
      let seq = 0;
      const pending = new Map();
      ws.onmessage = (ev) => {
        const m = JSON.parse(ev.data);
        if (m.id && pending.has(m.id)) {
          pending.get(m.id)(m);
          pending.delete(m.id);
        }
      };
      await new Promise((res, rej) => {
        ws.onopen = res;
        ws.onerror = () => rej(new Error('WebSocket error'));
      });
      const call = (handle, method, params) =>
        new Promise((res) => {
          const id = ++seq;
          pending.set(id, res);
          ws.send(JSON.stringify({ jsonrpc: '2.0', id, handle, method, params }));
        });
      const open = await call(-1, 'OpenDoc', [appId]);
      if (open.error) throw new Error(`OpenDoc: ${JSON.stringify(open.error)}`);
      const h = open.result.qReturn.qHandle;
      const results = [];
      for (const [method, params] of steps) {
        const r = await call(h, method, params);
        if (r.error) throw new Error(`${method}: ${JSON.stringify(r.error)}`);
        results.push(r.result);
      }
      ws.close();
      return results;
    },
    { appId, steps },
  );
}

/** GET/POST to the REST API from the page (cookie + CSRF token). */
async function rest(page, method, path, body) {
  return page.evaluate(
    async ({ method, path, body }) => {
      const t = await fetch('/api/v1/csrf-token', { cache: 'no-store' });
      const headers = { 'qlik-csrf-token': t.headers.get('qlik-csrf-token') || '' };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: r.status, json: await r.json().catch(() => null) };
    },
    { method, path, body },
  );
}

/** The hypercube rows of a chart object on the page: [[dimText, measureNum], ...]. */
async function cubeRows(page, objectId) {
  return page.evaluate(async (id) => {
    const app = window.tesseraApp;
    const o = await app.getObject(id);
    const l = await o.getLayout();
    return (l.qHyperCube.qDataPages[0]?.qMatrix ?? []).map((r) => [r[0].qText, r[r.length - 1].qNum]);
  }, objectId);
}

/** Every visible listbox row of a filter pane: {text, state S/A/X/XS/O, colour (CSS background)}. */
async function listboxRows(page, objectId) {
  return page.evaluate((id) => {
    const cell = document.querySelector(`[data-object-id="${id}"]`);
    return [...cell.querySelectorAll('[data-testid="listbox.item"]')].map((el) => {
      // The row inside the item carries the state class (…-S, -A, -X, -XS) and the colour.
      const row = el.querySelector('[class*="fieldRoot"]') || el;
      const cls = [...row.classList].map((c) => /-(S|XS|A|X)$/.exec(c)?.[1]).find(Boolean);
      let e = row;
      let bg = getComputedStyle(e).backgroundColor;
      while (e && (bg === 'rgba(0, 0, 0, 0)' || bg === 'transparent')) {
        e = e.parentElement;
        bg = e ? getComputedStyle(e).backgroundColor : bg;
      }
      return { text: el.innerText.trim().split('\n')[0], state: cls || 'O', colour: bg };
    });
  }, objectId);
}

/** The x-axis labels of a bar chart cell (sn-bar-chart paints bars on canvas, labels in SVG):
 * the labels equal to the chart's dimension values, with where each bar stands. */
async function bars(page, cell, values) {
  return cell.evaluate(
    (el, values) =>
      [...el.querySelectorAll('svg text')]
        .map((t) => ({ text: t.textContent.trim(), b: t.getBoundingClientRect() }))
        .filter((t) => values.includes(t.text) && t.b.width > 0)
        .map((t) => ({ text: t.text, x: t.b.x + t.b.width / 2, y: t.b.y })),
    values,
  );
}

const browser = await launchBrowser();

let page = null;
try {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  page = await ctx.newPage();
  page.setDefaultTimeout(30_000);
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  // ---- sign in, create a space and an app in it -------------------------------------------
  await signInToHub(page, url, creds);
  const stamp = Date.now();
  const spaceName = `Nebula space ${stamp}`;
  await page.getByRole('button', { name: 'Create space' }).click();
  await page.getByRole('dialog').getByLabel('Space name').fill(spaceName);
  await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
  await page.getByTestId('hub-status').filter({ hasText: spaceName }).waitFor();
  await page.getByRole('navigation', { name: 'Spaces' }).getByRole('button', { name: spaceName }).click();
  const appName = `Nebula app ${stamp}`;
  await page.getByRole('button', { name: 'Create app' }).click();
  await page.getByRole('dialog').getByLabel('App name').fill(appName);
  await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
  const appLink = page.getByTestId('apps').getByRole('link', { name: appName, exact: true });
  await appLink.waitFor();
  const appId = decodeURIComponent((await appLink.getAttribute('href')).split('/')[2]);
  await snap(page, 'hub-space-and-app');
  ok(`signed in; space "${spaceName}" and app ${appId} created through the hub`);

  // ---- a small data model ------------------------------------------------------------------
  const script = [
    'Sales: LOAD * INLINE [',
    'Country, Region, Sales',
    'Sweden, North, 10',
    'Sweden, North, 7',
    'Norway, North, 20',
    'Denmark, South, 5',
    'Germany, South, 12',
    'France, West, 9',
    '];',
    '',
  ].join('\n');
  const [, reload] = await qix(page, appId, [
    ['SetScript', [script]],
    ['DoReload', [0, false, false]],
    ['DoSave', []],
  ]);
  assert(reload.qReturn === true, `DoReload: ${JSON.stringify(reload)}`);
  ok('load script set and reloaded over QIX from the page (cookie-authenticated WebSocket)');

  // ---- the app view: a sheet with four charts ----------------------------------------------
  await appLink.click();
  await page.waitForURL(`**/apps/${appId}`);
  await page.getByTestId('sheets-empty').waitFor();
  await page.getByLabel('New sheet name').fill('Overview');
  await page.getByRole('button', { name: 'Create sheet' }).click();
  await page.waitForURL(/\/sheets\//);
  const sheetId = decodeURIComponent(new URL(page.url()).pathname.split('/')[4]);
  await page.getByTestId('chart-editor').waitFor();
  await snap(page, 'sheet-editor');
  const fpId = await addChart(page, { type: 'filterpane', dims: ['Country', 'Region'] });
  const barId = await addChart(page, { type: 'barchart', dims: ['Country'], measures: [['Sum', 'Sales']] });
  const kpiId = await addChart(page, { type: 'kpi', measures: [['Sum', 'Sales']] });
  const tableId = await addChart(page, { type: 'table', dims: ['Country', 'Region'], measures: [['Sum', 'Sales']] });
  ok(`sheet ${sheetId}: filter pane ${fpId}, bar chart ${barId}, KPI ${kpiId}, table ${tableId} added from the data model's fields`);

  await page.getByTestId('sheet-edit').click(); // done editing
  const bar = page.locator(`[data-object-id="${barId}"]`);
  const kpi = page.locator(`[data-object-id="${kpiId}"]`);
  const fp = page.locator(`[data-object-id="${fpId}"]`);
  const countries = ['Norway', 'Sweden', 'Germany', 'France', 'Denmark'];
  await until('the bar chart to draw its bars', async () => (await bars(page, bar, countries)).length === 5);
  await until('the KPI to show 63', async () => /\b63\b/.test(await kpi.innerText()));
  await until('the filter pane to list the countries', async () => /Sweden/.test(await fp.innerText()));
  await until('the table to show its rows', async () => /Germany/.test(await page.locator(`[data-object-id="${tableId}"]`).innerText()));
  await snap(page, 'sheet-rendered');
  const rows = await cubeRows(page, barId);
  assert(JSON.stringify(rows) === JSON.stringify([['Norway', 20], ['Sweden', 17], ['Germany', 12], ['France', 9], ['Denmark', 5]]), `bar chart rows: ${JSON.stringify(rows)}`);
  ok('nebula.js renders sn-bar-chart (5 bars, sorted by Sum(Sales)), sn-filter-pane, sn-kpi (63) and sn-table against the engine');

  // ---- click a bar: the selection shows in the filter pane's list object -------------------
  const norway = (await bars(page, bar, ['Norway']))[0];
  await page.mouse.click(norway.x, norway.y - 60); // inside the tallest bar, above its axis label
  await snap(page, 'bar-clicked-in-selection');
  // Confirm the selection (nebula's confirm button in the chart's selection toolbar), or click outside.
  const confirm = page.locator('[data-testid="actions-toolbar-confirm"], button[title="Confirm selection"]').first();
  if (await confirm.count()) await confirm.click();
  else await page.mouse.click(5, 5);
  await until('the KPI to show 20 (Norway)', async () => /\b20\b/.test(await kpi.innerText()));
  const lb = await until('the filter pane to show Norway selected', async () => {
    const r = await page.evaluate(async (id) => {
      const app = window.tesseraApp;
      const fpObj = await app.getObject(id);
      const fl = await fpObj.getLayout();
      const child = await app.getObject(fl.qChildList.qItems[0].qInfo.qId);
      const l = await child.getLayout();
      const d = await child.getListObjectData('/qListObjectDef', [{ qTop: 0, qLeft: 0, qWidth: 1, qHeight: 50 }]);
      return { field: l.qListObject.qDimensionInfo.qFallbackTitle, cells: d[0].qMatrix.map((r) => [r[0].qText, r[0].qState]) };
    }, fpId);
    return r.cells.some(([t, s]) => t === 'Norway' && s === 'S') ? r : null;
  });
  const states = Object.fromEntries(lb.cells);
  assert(states.Norway === 'S' && states.Sweden === 'A' && states.Denmark === 'A', `Country states: ${JSON.stringify(lb.cells)}`);
  await snap(page, 'bar-selection-in-filter-pane');
  // The filter pane's colours follow the states: selected green, alternative light grey,
  // possible white, excluded dark grey (Region: North possible, South and West excluded).
  const COLOUR = { S: 'rgb(0, 135, 61)', A: 'rgb(228, 228, 228)', X: 'rgb(190, 190, 190)', O: 'rgb(255, 255, 255)' };
  const seen = await until('the filter pane rows to show the states', async () => {
    const r = await listboxRows(page, fpId);
    globalThis.lastRows = r;
    return r.find((x) => x.text === 'Norway')?.state === 'S' && r.find((x) => x.text === 'South')?.state === 'X' ? r : null;
  });
  const want1 = { Norway: 'S', Sweden: 'A', Denmark: 'A', Germany: 'A', France: 'A', North: 'O', South: 'X', West: 'X' };
  for (const [text, st] of Object.entries(want1)) {
    const r = seen.find((x) => x.text === text);
    assert(r && r.state === st && r.colour === COLOUR[st], `${text}: ${JSON.stringify(r)}, want ${st} ${COLOUR[st]}`);
  }
  ok(`a click on the Norway bar selects it: Country's list object shows Norway S, the others A (${JSON.stringify(lb.cells)}); filter pane colours: Norway green, other countries light grey, North white, South and West dark grey`);

  // ---- selections bar: back, forward, lock, clear --------------------------------------------
  await page.getByTestId('sel-back').click();
  await until('the KPI back at 63', async () => /\b63\b/.test(await kpi.innerText()));
  await page.getByTestId('sel-forward').click();
  await until('the KPI at 20 again', async () => /\b20\b/.test(await kpi.innerText()));
  await page.getByTestId('sel-lock').click();
  await page.getByTestId('sel-unlock').waitFor();
  await snap(page, 'selections-locked');
  await page.getByTestId('sel-unlock').click();
  await page.getByTestId('sel-clear').click();
  await until('the KPI back at 63 after clear', async () => /\b63\b/.test(await kpi.innerText()));
  ok('the selections bar: back, forward, lock all, unlock all, clear all');

  // ---- persistence: the sheet and its charts survive a reload of the page -------------------
  await page.reload();
  await page.getByTestId('sheet-grid').waitFor();
  await until('four charts after reload', async () => (await page.locator('.sheet-cell').count()) === 4);
  await until('the bar chart drawn after reload', async () => (await bars(page, page.locator(`[data-object-id="${barId}"]`), countries)).length === 5);
  await snap(page, 'sheet-after-page-reload');
  await page.goto(`${url}/apps/${appId}`);
  await page.getByTestId('sheets').getByRole('link', { name: 'Overview' }).waitFor();
  ok('after a page reload the sheet (a persistent "sheet" object with 4 children) is listed and renders again');
  // Edit again: remove the table (DestroyChild with the sheet's new cells); it stays removed.
  await page.getByTestId('sheets').getByRole('link', { name: 'Overview' }).click();
  await page.getByTestId('sheet-edit').click();
  await page.getByRole('button', { name: 'Remove this table' }).click();
  await until('three charts', async () => (await page.locator('.sheet-cell').count()) === 3);
  await page.reload();
  await page.getByTestId('sheet-grid').waitFor();
  await until('three charts after reload', async () => (await page.locator('.sheet-cell').count()) === 3);
  const gone = await page.evaluate((id) => window.tesseraApp.getObject(id).then(() => 'found', (e) => e.code), tableId);
  assert(gone === 2, `the removed table's object: ${gone}`);
  ok('a chart removed in edit mode is gone after a page reload (its object too)');
  // Rename the sheet, then delete it: its charts (children) go with it.
  await page.getByTestId('sheet-edit').click();
  await page.getByLabel('Sheet name').fill('Overview renamed');
  await page.getByRole('button', { name: 'Rename' }).click();
  await until('the new sheet name', async () => (await page.getByTestId('sheet-title').innerText()) === 'Overview renamed');
  await page.getByRole('button', { name: 'Delete sheet' }).click();
  await page.getByRole('button', { name: 'Yes, delete the sheet' }).click();
  await page.getByTestId('sheets-empty').waitFor();
  const barGone = await page.evaluate((id) => window.tesseraApp.getObject(id).then(() => 'found', (e) => e.code), barId);
  assert(barGone === 2, `the deleted sheet's bar chart: ${barGone}`);
  ok('the sheet renamed, then deleted with its charts');
  assert(consoleErrors.length === 0, `page errors: ${consoleErrors.join('; ')}`);

  if (salesDir) {
    // ---- part 2: the Sales flow at 1.6M rows --------------------------------------------------
    const ref = JSON.parse(process.env.SALES_REF || 'null');
    const q1 = [1077635925.38, 675449170.61, 566947664.52, 516859095.66, 491572268.48, 451911790.71, 444731937.88, 432695004.02];
    await page.goto(url + '/hub');
    await page.getByRole('navigation', { name: 'Spaces' }).getByRole('button', { name: spaceName }).click();
    const upload = page.getByLabel('Upload a data file');
    for (const f of ['Customers.csv', 'Products.csv', 'Calendar.csv', 'Sales.csv']) {
      const t = Date.now();
      await upload.setInputFiles(join(salesDir, f));
      await page.locator('.datafiles').getByText(f, { exact: true }).first().waitFor({ timeout: 120_000 });
      await until(`the upload of ${f} to finish`, async () => (await page.locator('.datafiles progress').count()) === 0, 120_000);
      console.log(`# uploaded ${f} in ${Date.now() - t} ms`);
    }
    await snap(page, 'sales-files-uploaded');
    ok('the four Sales CSVs (1.6M sales rows) uploaded into the space through the hub');

    const salesApp = `Sales 1.6M ${stamp}`;
    await page.getByRole('button', { name: 'Create app' }).click();
    await page.getByRole('dialog').getByLabel('App name').fill(salesApp);
    await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
    const salesLink = page.getByTestId('apps').getByRole('link', { name: salesApp, exact: true });
    await salesLink.waitFor();
    const salesId = decodeURIComponent((await salesLink.getAttribute('href')).split('/')[2]);
    const salesScript = ['Customers', 'Products', 'Calendar', 'Sales']
      .map((t) => `${t}: LOAD * FROM [lib://DataFiles/${t}.csv]\n  (txt, utf8, embedded labels, delimiter is ',');\n`)
      .join('');
    // The data load editor: the script typed in, saved and reloaded with its log in view.
    await page.goto(`${url}/apps/${salesId}/load-script`);
    const editor = page.getByLabel('Load script');
    await editor.waitFor();
    await editor.fill(salesScript);
    const tr = Date.now();
    await page.getByRole('button', { name: 'Save and reload' }).click();
    const reloadStatus = page.getByTestId('dle-reload-status');
    await reloadStatus.waitFor({ timeout: 60_000 });
    await until(
      'the reload to finish in the editor',
      async () => /SUCCEEDED|FAILED|CANCELED/.test(await reloadStatus.innerText()),
      180_000,
    );
    const salesLog = await page.getByTestId('dle-log').innerText();
    assert(/SUCCEEDED/.test(await reloadStatus.innerText()), `reload: ${await reloadStatus.innerText()}\n${salesLog}`);
    for (const t of ['Customers', 'Products', 'Calendar', 'Sales']) {
      assert(salesLog.includes(t), `the reload log names ${t}: ${salesLog}`);
    }
    assert(/1[ ,.]?600[ ,.]?000|1600000/.test(salesLog), `the reload log shows the 1.6M Sales rows: ${salesLog}`);
    await snap(page, 'sales-reload-log');
    ok(`app ${salesId}: load script typed into the data load editor, saved and reloaded with the log in view in ${((Date.now() - tr) / 1000).toFixed(1)} s`);

    await page.goto(`${url}/apps/${salesId}`);
    await page.getByLabel('New sheet name').fill('Sales');
    await page.getByRole('button', { name: 'Create sheet' }).click();
    await page.waitForURL(/\/sheets\//);
    await page.getByTestId('chart-editor').waitFor();
    const sFp = await addChart(page, { type: 'filterpane', dims: ['Country'] });
    const sFp2 = await addChart(page, { type: 'filterpane', dims: ['Region'] });
    const sBar = await addChart(page, { type: 'barchart', dims: ['Region'], exprs: ['Sum(Quantity*UnitPrice)'] });
    await page.getByTestId('sheet-edit').click();
    const sBarCell = page.locator(`[data-object-id="${sBar}"]`);
    const regions = [...Array(8).keys()].map((k) => `Region ${k}`);
    await until('8 region bars', async () => (await bars(page, sBarCell, regions)).length === 8, 60_000);
    const all = await cubeRows(page, sBar);
    assert(all.length === 8, `rows: ${JSON.stringify(all)}`);
    all.forEach(([region, v]) => {
      const k = Number(region.replace('Region ', ''));
      assert(Math.abs(v - q1[k]) < 0.005, `${region}: ${v}, want ${q1[k]}`);
    });
    await snap(page, 'sales-sheet');
    ok('Sales by Region: 8 bars equal SALES_MODEL.md Q1 (to the cent)');

    // Click a country in the filter pane.
    const country = ref?.country ?? 'Country 03';
    const fpCell = page.locator(`[data-object-id="${sFp}"]`);
    await fpCell.locator('[data-testid="listbox.item"]', { hasText: country }).first().click();
    await snap(page, 'sales-country-clicked');
    await page.mouse.click(5, 5); // leave selection mode: the selection is kept
    const one = await until(`one bar for ${country}`, async () => {
      const r = await cubeRows(page, sBar);
      return r.length === 1 ? r : null;
    });
    if (ref) assert(one[0][0] === ref.region && Math.abs(one[0][1] - ref.sales) < 0.005, `bars after ${country}: ${JSON.stringify(one)}, want ${JSON.stringify(ref)}`);
    await until('one bar drawn', async () => (await bars(page, sBarCell, regions)).length === 1);
    // Filter pane states and colours.
    const rowsFp = await until('the filter pane to show the new states', async () => {
      const r = [...(await listboxRows(page, sFp)), ...(await listboxRows(page, sFp2))];
      globalThis.lastRows = r;
      return r.some((x) => x.text === country && x.state === 'S') && r.some((x) => x.state === 'X') ? r : null;
    });
    const by = Object.fromEntries(rowsFp.map((r) => [r.text, r]));
    const want = { S: 'rgb(0, 135, 61)', A: 'rgb(228, 228, 228)', X: 'rgb(190, 190, 190)', O: 'rgb(255, 255, 255)' };
    const region = ref?.region ?? one[0][0];
    const checks = [
      [country, 'S'],
      ...rowsFp.filter((r) => r.text.startsWith('Country ') && r.text !== country).slice(0, 3).map((r) => [r.text, 'A']),
      [region, 'O'],
      ...rowsFp.filter((r) => r.text.startsWith('Region ') && r.text !== region).slice(0, 3).map((r) => [r.text, 'X']),
    ];
    for (const [text, st] of checks) {
      const r = by[text];
      assert(r, `${text} is not visible in the filter pane: ${JSON.stringify(rowsFp.map((x) => x.text))}`);
      assert(r.state === st, `${text}: state ${r.state}, want ${st}`);
      assert(r.colour === want[st], `${text} (${st}): colour ${r.colour}, want ${want[st]}`);
    }
    await snap(page, 'sales-country-selected');
    ok(`${country} selected: one bar ${one[0][0]} = ${one[0][1]}${ref ? ' (equals the reference from the CSVs)' : ''}; the filter pane shows ${country} green, other countries light grey, ${region} white, other regions dark grey`);
  }
} catch (e) {
  if (page) {
    await snap(page, 'failure').catch(() => undefined);
    const text = await page.evaluate(() => document.body.innerText.slice(0, 600)).catch(() => '');
    console.error(`# failed at ${page.url()}; the page says: ${text.replace(/\s+/g, ' ')}`);
  }
  throw e;
} finally {
  await browser.close();
}
console.log(`${passed} passed, 0 failed`);
