// What the browser tests (web.mjs, apps.mjs, bookmarks.mjs, nebula.mjs) share: the
// environment, headless Chromium, screenshots, waiting, signing in and the label check.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** The environment variable k; an error when it is not set. */
export const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

/** The screenshot directory, $E2E_ARTIFACTS (created). */
export function artifacts() {
  const out = env('E2E_ARTIFACTS');
  mkdirSync(out, { recursive: true });
  return out;
}

/** snap(page, name): a full-page screenshot <out>/<prefix>NN-<name>.png, numbered in order;
 * returns its path. */
export function screenshots(out, prefix = '') {
  let shot = 0;
  return async (page, name) => {
    shot++;
    const file = join(out, `${prefix}${String(shot).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
  };
}

/** fn's first truthy answer, asked every 100 ms for up to ms; else an error naming what, with
 * the last answer (and detail(), when given). */
export async function until(what, fn, ms = 20_000, detail) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  const more = detail ? ` ${detail()}` : '';
  throw new Error(`timed out waiting for ${what}: ${last instanceof Error ? last.message : JSON.stringify(last)}${more}`);
}

/** Headless Chromium ($CHROMIUM, default Debian's /usr/bin/chromium). hostB: a second
 * hostname of the same ingress (tenant B; tenants are resolved by Host) mapped to 127.0.0.1. */
export function launchBrowser({ hostB } = {}) {
  const args = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-dev-shm-usage',
  ];
  if (hostB) args.push(`--host-resolver-rules=MAP ${hostB} 127.0.0.1`);
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args });
}

/** Every visible form control has an accessible name (label, aria-label or aria-labelledby). */
export async function checkLabels(page, where) {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea')]
      .filter((el) => el.type !== 'hidden' && el.offsetParent !== null)
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
      .map((el) => el.outerHTML.slice(0, 80)),
  );
  assert(unlabelled.length === 0, `${where}: controls without a label: ${unlabelled.join(', ')}`);
}

/** Sign in at url's sign-in page with creds ({user, password}) and wait for the hub's apps. */
export async function signInToHub(page, url, creds) {
  await page.goto(url + '/');
  await page.getByLabel('Email').fill(creds.user);
  await page.getByLabel('Password').fill(creds.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/hub');
  await page.locator('[data-testid=apps], [data-testid=apps-empty]').first().waitFor();
}

/** A "failure" screenshot of every page the browser still has open. */
export async function snapAll(browser, snap) {
  for (const ctx of browser.contexts()) {
    for (const p of ctx.pages()) {
      try {
        await snap(p, 'failure');
      } catch {
        // the page may be gone
      }
    }
  }
}

/** Add a chart through the app sheet's editor: dimensions by field, measures as [aggregation,
 * field], expressions, master measures by label. Returns the new chart's object id. */
export async function addChart(page, { type, dims = [], measures = [], exprs = [], master = [] }) {
  const ed = page.getByTestId('chart-editor');
  await ed.getByTestId('chart-type').selectOption(type);
  for (const d of dims) await ed.getByTestId('add-dimension').selectOption(d);
  for (const [agg, field] of measures) {
    await ed.getByTestId('measure-agg').selectOption(agg);
    await ed.getByTestId('measure-field').selectOption(field);
    await ed.getByTestId('add-measure').click();
  }
  for (const e of exprs) {
    await ed.getByTestId('measure-expr').fill(e);
    await ed.getByTestId('add-expr').click();
  }
  for (const m of master) await ed.getByTestId('add-master-measure').selectOption({ label: m });
  const before = await page.locator(`[data-testid=cell-${type}]`).count();
  await ed.getByTestId('add-chart').click();
  await until(`a new ${type} on the sheet`, async () => (await page.locator(`[data-testid=cell-${type}]`).count()) > before);
  return page.locator(`[data-testid=cell-${type}]`).nth(before).getAttribute('data-object-id');
}
