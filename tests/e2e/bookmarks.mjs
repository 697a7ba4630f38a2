// Bookmarks, master measures and publishing in headless Chromium against a real local stack
// (tests/integration/test_web.sh runs it after web.mjs and apps.mjs). Every step leaves a
// screenshot in $E2E_ARTIFACTS (bookmarks-*.png).
//
//   - the hub: a shared space, a managed space and an app in the shared space;
//   - the data load editor: a LOAD * INLINE script saved and reloaded (SUCCEEDED);
//   - the app view: a master measure "Total sales" = Sum(Sales) defined in the master measures
//     panel, a sheet with a filter pane on Country and a bar chart of Country by that master
//     measure (qLibraryId); the bars equal the sums and the axis shows the measure's label;
//   - a selection in the filter pane, a bookmark created from it with the keyboard only, clear
//     all, apply the bookmark: the selections bar shows Country = Norway again; delete it;
//   - a master dimension "Land" on Country defined in its panel and used by a bar chart (the
//     rows of the chart by the field); a bad master measure expression refused with the
//     engine's CheckExpression message;
//   - publish the app to the managed space from the hub; it is listed in that space, with its
//     master measure; then move the source app to the personal space.
//
// Environment: TSR_URL, TSR_CREDS (credentials.json of the tenant admin), E2E_ARTIFACTS,
// CHROMIUM.
import { readFileSync } from 'node:fs';
import { addChart, artifacts, assert, env, launchBrowser, screenshots, signInToHub, until } from './lib.mjs';

const url = env('TSR_URL');
const creds = JSON.parse(readFileSync(env('TSR_CREDS'), 'utf8'));
const snap = screenshots(artifacts(), 'bookmarks-');

let passed = 0;
const t0 = Date.now();
function ok(msg) {
  passed++;
  console.log(`ok ${passed} - bookmarks: ${msg} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
}

/** The hypercube of a chart object on the page: rows [[dimText, measureNum]] and measure titles. */
async function cube(page, objectId) {
  return page.evaluate(async (id) => {
    const o = await window.tesseraApp.getObject(id);
    const l = await o.getLayout();
    return {
      rows: (l.qHyperCube.qDataPages[0]?.qMatrix ?? []).map((r) => [r[0].qText, r[r.length - 1].qNum]),
      titles: l.qHyperCube.qMeasureInfo.map((m) => m.qFallbackTitle),
      lib: (await o.getProperties()).qHyperCubeDef.qMeasures.map((m) => m.qLibraryId || ''),
    };
  }, objectId);
}

/** The texts of a bar chart cell's SVG labels that are among values. */
async function labels(cell, values) {
  return cell.evaluate(
    (el, values) => [...el.querySelectorAll('svg text')].map((t) => t.textContent.trim()).filter((t) => values.includes(t)),
    values,
  );
}

/** Every visible control of a container has an accessible name (label, aria-label or text). */
async function checkLabels(scope, what) {
  const unnamed = await scope.evaluate((root) =>
    [...root.querySelectorAll('button, input, select, textarea')]
      .filter((el) => {
        if (el.type === 'hidden' || el.offsetParent === null) return false;
        const lbl = el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`);
        return !(el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || lbl || el.closest('label') || (el.tagName === 'BUTTON' && el.innerText.trim()));
      })
      .map((el) => el.outerHTML.slice(0, 120)),
  );
  assert(unnamed.length === 0, `${what}: controls without a label: ${unnamed.join(' | ')}`);
}

const SCRIPT = ['Sales: LOAD * INLINE [', 'Country, Sales', 'Sweden, 10', 'Sweden, 7', 'Norway, 20', 'Denmark, 5', '];', ''].join('\n');

const browser = await launchBrowser();

let page = null;
try {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  page = await ctx.newPage();
  page.setDefaultTimeout(30_000);
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  // ---- the hub: a shared space, a managed space, an app in the shared space ----------------
  await signInToHub(page, url, creds);
  const stamp = Date.now();
  const shared = `Team ${stamp}`;
  const managed = `Published ${stamp}`;
  for (const [name, type] of [
    [shared, 'shared'],
    [managed, 'managed'],
  ]) {
    await page.getByRole('button', { name: 'Create space' }).click();
    const dlg = page.getByRole('dialog');
    await dlg.getByLabel('Space name').fill(name);
    await dlg.getByLabel('Type').selectOption(type);
    await dlg.getByRole('button', { name: 'Create' }).click();
    await page.getByTestId('hub-status').filter({ hasText: name }).waitFor();
  }
  const nav = page.getByRole('navigation', { name: 'Spaces' });
  await nav.getByRole('button', { name: shared }).click();
  const appName = `Bookmarks app ${stamp}`;
  await page.getByRole('button', { name: 'Create app' }).click();
  await page.getByRole('dialog').getByLabel('App name').fill(appName);
  await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
  const appLink = page.getByTestId('apps').getByRole('link', { name: appName, exact: true });
  await appLink.waitFor();
  const appId = decodeURIComponent((await appLink.getAttribute('href')).split('/')[2]);
  ok(`spaces "${shared}" (shared) and "${managed}" (managed), app ${appId} created through the hub`);

  // ---- the data load editor: LOAD * INLINE, save and reload --------------------------------
  await page.getByRole('link', { name: `Data load editor of ${appName}` }).click();
  await page.getByLabel('Load script').waitFor();
  await page.getByLabel('Load script').fill(SCRIPT);
  await page.getByRole('button', { name: 'Save and reload' }).click();
  await page.getByTestId('dle-reload-status').getByText('SUCCEEDED').waitFor({ timeout: 60_000 });
  await snap(page, 'reloaded');
  ok('the data load editor saved and reloaded a LOAD * INLINE script (SUCCEEDED)');

  // ---- master measure: defined in its panel, used by a bar chart ---------------------------
  await page.goto(`${url}/apps/${encodeURIComponent(appId)}`);
  await page.getByTestId('sheets-empty').waitFor();
  await page.getByTestId('toggle-measures').click();
  const mp = page.getByTestId('measures-panel');
  await mp.getByTestId('measures-empty').waitFor();
  await mp.getByTestId('measure-save').click(); // empty: both fields complain, nothing stored
  await mp.getByText('Give the measure a name.').waitFor();
  await mp.getByText(/Enter an expression/).waitFor();
  await mp.getByLabel('Measure name').fill('Total sales');
  await mp.getByLabel('Expression').fill('Sum(Sales)');
  await mp.getByLabel('Description (optional)').fill('All sales');
  await mp.getByTestId('measure-save').click();
  await mp.getByTestId('measure-status').getByText('Master measure “Total sales” created.').waitFor();
  await mp.getByTestId('master-measures').getByText('Total sales').waitFor();
  await checkLabels(mp, 'master measures panel');
  await snap(page, 'master-measure');
  // A second session sees it too (stored in the app, not the session).
  const listed = await page.evaluate(async () => {
    const o = await window.tesseraApp.createSessionObject({ qInfo: { qType: 'x' }, qMeasureListDef: { qType: 'measure', qData: { l: '/qMeasure/qLabel', d: '/qMeasure/qDef' } } });
    const l = await o.getLayout();
    return l.qMeasureList.qItems.map((i) => [i.qInfo.qId, i.qData.l, i.qData.d]);
  });
  assert(listed.length === 1 && listed[0][1] === 'Total sales' && listed[0][2] === 'Sum(Sales)', `measure list: ${JSON.stringify(listed)}`);
  await page.keyboard.press('Escape'); // closes the panel, focus back on its toggle
  await until('the measures panel closed', async () => (await page.getByTestId('measures-panel').count()) === 0);
  await until('focus back on the panel toggle', async () => (await page.evaluate(() => document.activeElement?.id)) === 'toggle-measures', 5_000);
  ok(`master measure ${listed[0][0]} "Total sales" = Sum(Sales) created in the panel (validation, labels, Escape closes)`);

  await page.getByLabel('New sheet name').fill('Bookmarks');
  await page.getByRole('button', { name: 'Create sheet' }).click();
  await page.waitForURL(/\/sheets\//);
  await page.getByTestId('chart-editor').waitFor();
  const fpId = await addChart(page, { type: 'filterpane', dims: ['Country'] });
  const barId = await addChart(page, { type: 'barchart', dims: ['Country'], master: ['Total sales'] });
  await page.getByTestId('sheet-edit').click(); // done editing
  const bar = page.locator(`[data-object-id="${barId}"]`);
  const fp = page.locator(`[data-object-id="${fpId}"]`);
  const countries = ['Sweden', 'Norway', 'Denmark'];
  await until('the bar chart to draw three bars', async () => (await labels(bar, countries)).length === 3);
  const c1 = await cube(page, barId);
  assert(c1.lib[0] === listed[0][0], `the chart's measure references the master measure: ${JSON.stringify(c1.lib)}`);
  assert(c1.titles[0] === 'Total sales', `measure title: ${JSON.stringify(c1.titles)}`);
  const sums = Object.fromEntries(c1.rows);
  assert(sums.Sweden === 17 && sums.Norway === 20 && sums.Denmark === 5, `bar values: ${JSON.stringify(c1.rows)}`);
  await until('the axis title to show the master measure label', async () => (await bar.innerText()).includes('Total sales'));
  await snap(page, 'bar-chart-master-measure');
  ok(`a bar chart of Country by the master measure (qLibraryId): ${JSON.stringify(c1.rows)}, titled "Total sales"`);

  // ---- a selection, a bookmark of it (keyboard only), clear, apply ---------------------------
  await until('the filter pane to list the countries', async () => /Norway/.test(await fp.innerText()));
  await fp.locator('[data-testid="listbox.item"]', { hasText: 'Norway' }).first().click();
  await page.mouse.click(5, 5); // leave selection mode: the selection is kept
  const selBar = page.getByTestId('current-selections');
  await until('the selections bar to show Norway', async () => /Country/.test(await selBar.innerText()) && /Norway/.test(await selBar.innerText()));
  await until('one bar left', async () => (await cube(page, barId)).rows.length === 1);
  await snap(page, 'selection');
  await page.getByTestId('toggle-bookmarks').focus();
  await page.keyboard.press('Enter');
  const bp = page.getByTestId('bookmarks-panel');
  await bp.getByTestId('bookmarks-empty').waitFor();
  // The name field has focus: type the name and press Enter.
  await until('focus in the bookmark name', async () => (await page.evaluate(() => document.activeElement?.getAttribute('data-testid'))) === 'bookmark-name');
  await page.keyboard.type('Norway only');
  await page.keyboard.press('Enter');
  await bp.getByTestId('bookmark-status').getByText('Bookmark “Norway only” created from the current selections.').waitFor();
  await bp.getByTestId('bookmarks').getByText('Norway only').waitFor();
  await checkLabels(bp, 'bookmarks panel');
  await snap(page, 'bookmark-created');
  ok('a bookmark "Norway only" created from the current selection with the keyboard (toggle, name, Enter)');

  await page.getByTestId('sel-clear').click();
  await until('the selections bar empty', async () => !/Norway/.test(await selBar.innerText()));
  await until('three bars again', async () => (await cube(page, barId)).rows.length === 3);
  await snap(page, 'cleared');
  await bp.getByRole('button', { name: 'Apply bookmark Norway only' }).click();
  await until('the selections bar to show Norway again', async () => /Country/.test(await selBar.innerText()) && /Norway/.test(await selBar.innerText()));
  const c2 = await until('one bar after apply', async () => {
    const c = await cube(page, barId);
    return c.rows.length === 1 ? c : null;
  });
  assert(c2.rows[0][0] === 'Norway' && c2.rows[0][1] === 20, `after apply: ${JSON.stringify(c2.rows)}`);
  await snap(page, 'bookmark-applied');
  ok(`clear all, then apply: the selections bar shows Country = Norway again, the chart ${JSON.stringify(c2.rows)}`);

  // The bookmark is stored: after a page reload it is still listed; then delete it.
  await page.reload();
  await page.getByTestId('sheet-grid').waitFor();
  await page.getByTestId('toggle-bookmarks').click();
  await page.getByTestId('bookmarks-panel').getByTestId('bookmarks').getByText('Norway only').waitFor();
  await page.getByRole('button', { name: 'Delete bookmark Norway only' }).click();
  await page.getByTestId('bookmarks-panel').getByRole('button', { name: 'Yes, delete' }).click();
  await page.getByTestId('bookmarks-panel').getByTestId('bookmarks-empty').waitFor();
  ok('the bookmark survives a page reload and is deleted from the panel');

  // ---- master dimension: defined in its panel, used by a bar chart; a bad measure refused -----
  await page.getByTestId('toggle-dimensions').click();
  const dp = page.getByTestId('dimensions-panel');
  await dp.getByTestId('dimensions-empty').waitFor();
  await dp.getByTestId('dimension-save').click(); // empty: both fields complain, nothing stored
  await dp.getByText('Give the dimension a name.').waitFor();
  await dp.getByText('Choose the field of the dimension.').waitFor();
  await dp.getByLabel('Dimension name').fill('Land');
  await dp.getByTestId('dimension-field').selectOption('Country');
  await dp.getByTestId('dimension-save').click();
  await dp.getByTestId('dimension-status').getByText('Master dimension “Land” created.').waitFor();
  await dp.getByTestId('master-dimensions').getByText('Land').waitFor();
  await checkLabels(dp, 'master dimensions panel');
  await snap(page, 'master-dimension');
  await page.getByTestId('toggle-dimensions').click();
  // A bad expression is checked by the engine (CheckExpression) and not saved.
  await page.getByTestId('toggle-measures').click();
  const mp2 = page.getByTestId('measures-panel');
  await mp2.getByTestId('master-measures').getByText('Total sales').waitFor();
  await mp2.getByLabel('Measure name').fill('Broken');
  await mp2.getByLabel('Expression').fill('Sum(Sales');
  await mp2.getByTestId('measure-save').click();
  await mp2.getByText(/The expression is not valid: Error in expression/).waitFor();
  await mp2.getByLabel('Expression').fill('Sum(NoSuchField)');
  await mp2.getByTestId('measure-save').click();
  await mp2.getByText('The expression is not valid: Bad field name(s): NoSuchField').waitFor();
  await snap(page, 'bad-measure-refused');
  assert((await mp2.getByTestId('master-measures').locator('li').count()) === 1, 'the bad measure was not stored');
  await page.getByTestId('toggle-measures').click();
  ok('a bad master measure expression is refused with the engine\'s message (syntax, unknown field)');

  // A bar chart by the master dimension: the rows of the chart by the field itself.
  // Edit mode (the page may be in it already: ?edit=1 survives the reload).
  if ((await page.getByTestId('sheet-edit').getAttribute('aria-pressed')) !== 'true') await page.getByTestId('sheet-edit').click();
  const ed = page.getByTestId('chart-editor');
  await ed.getByTestId('add-master-dimension').selectOption({ label: 'Land' });
  await ed.getByTestId('add-master-measure').selectOption({ label: 'Total sales' });
  const nBars = await page.locator('[data-testid=cell-barchart]').count();
  await ed.getByTestId('add-chart').click();
  await until('a new bar chart on the sheet', async () => (await page.locator('[data-testid=cell-barchart]').count()) > nBars);
  const landId = await page.locator('[data-testid=cell-barchart]').nth(nBars).getAttribute('data-object-id');
  const land = page.locator(`[data-object-id="${landId}"]`);
  await until('the master dimension chart to draw three bars', async () => (await labels(land, countries)).length === 3);
  const dimInfo = await page.evaluate(async (id) => {
    const o = await window.tesseraApp.getObject(id);
    const l = await o.getLayout();
    const d = l.qHyperCube.qDimensionInfo[0];
    return { title: d.qFallbackTitle, lib: (await o.getProperties()).qHyperCubeDef.qDimensions[0].qLibraryId };
  }, landId);
  const [cl, cf] = [await cube(page, landId), await cube(page, barId)];
  const byText = (rows) => JSON.stringify([...rows].sort((a, b) => String(a[0]).localeCompare(String(b[0]))));
  assert(cl.rows.length === 3 && byText(cl.rows) === byText(cf.rows), `master dimension rows ${JSON.stringify(cl.rows)} vs field rows ${JSON.stringify(cf.rows)}`);
  assert(dimInfo.title === 'Land' && dimInfo.lib, `dimension title/library id: ${JSON.stringify(dimInfo)}`);
  await until('the axis title to show the master dimension label', async () => (await land.innerText()).includes('Land'));
  await snap(page, 'bar-chart-master-dimension');
  ok(`a bar chart by the master dimension "Land" (qLibraryId ${dimInfo.lib}): ${JSON.stringify(cl.rows)}, the rows of the chart by Country`);

  // ---- publish to the managed space ------------------------------------------------------------
  await page.goto(`${url}/hub`);
  await nav.getByRole('button', { name: shared }).click();
  await page.getByTestId('apps').getByRole('link', { name: appName, exact: true }).waitFor();
  await page.getByRole('button', { name: `Publish ${appName}` }).click();
  const pd = page.getByRole('dialog');
  await pd.getByLabel('Managed space').selectOption({ label: managed });
  const pubName = `${appName} (published)`;
  await pd.getByLabel('Name of the published app').fill(pubName);
  await checkLabels(pd, 'publish dialog');
  await snap(page, 'publish-dialog');
  await pd.getByRole('button', { name: 'Publish' }).click();
  await page.getByTestId('hub-status').filter({ hasText: `published to “${managed}”` }).waitFor();
  await nav.getByRole('button', { name: managed }).click();
  const pubLink = page.getByTestId('apps').getByRole('link', { name: pubName, exact: true });
  await pubLink.waitFor();
  // A published app is not offered for publishing again.
  assert((await page.getByRole('button', { name: `Publish ${pubName}` }).count()) === 0, 'a published app offers no Publish');
  await snap(page, 'published-in-managed-space');
  // Its content came along: the master measure is there.
  const pubId = decodeURIComponent((await pubLink.getAttribute('href')).split('/')[2]);
  await page.goto(`${url}/apps/${encodeURIComponent(pubId)}`);
  await page.getByTestId('toggle-measures').click();
  await page.getByTestId('measures-panel').getByText('Total sales').first().waitFor();
  ok(`published to "${managed}" as ${pubId}: listed there, not publishable again, master measure carried`);

  // ---- move the source app to the personal space (PUT/DELETE /api/v1/apps/{id}/space) -------
  await page.goto(`${url}/hub`);
  await nav.getByRole('button', { name: shared }).click();
  await page.getByRole('button', { name: `Move ${appName}` }).click();
  const md = page.getByRole('dialog');
  await md.getByLabel('Move to').selectOption({ label: 'Personal' });
  await checkLabels(md, 'move dialog');
  await md.getByRole('button', { name: 'Move' }).click();
  await page.getByTestId('hub-status').filter({ hasText: 'moved to your personal space' }).waitFor();
  await until('the app gone from the shared space', async () => (await page.getByTestId('apps').getByRole('link', { name: appName, exact: true }).count()) === 0 || (await page.getByTestId('apps-empty').count()) === 1);
  await nav.getByRole('button', { name: 'Personal', exact: true }).click();
  await page.getByTestId('apps').getByRole('link', { name: appName, exact: true }).waitFor();
  await snap(page, 'moved-to-personal');
  ok('the source app moved from the shared space to the personal space through the hub');

  assert(pageErrors.length === 0, `page errors: ${pageErrors.join(' | ')}`);
  console.log(`bookmarks.mjs: ${passed} checks passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
} catch (e) {
  if (page) await snap(page, 'failure').catch(() => undefined);
  console.error(e);
  process.exitCode = 1;
} finally {
  await browser.close();
}
