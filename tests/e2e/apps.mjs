// End-to-end test of the web app's app pages and sign-in administration (issue 12), in
// headless Chromium against the real local stack that tests/integration/test_web.sh starts
// (after web.mjs, with the same environment):
//   - the data load editor: open an app from the hub, write a LOAD * INLINE script (highlighted,
//     numbered lines), save and reload through the reload service, watch the status and log;
//   - the data model viewer: tables, row counts, the key field;
//   - a script with an error: the failed reload names the line, the editor marks it;
//   - the RRULE builder: a weekly schedule in Europe/Berlin, saved as a reload task (checked
//     through the API), its runs;
//   - identity providers: create (secret write-only), test connection against a stand-in OIDC
//     provider served here (and a broken one), "Sign in with …" on the sign-in page, delete;
//   - keyboard: the editor is reachable with Tab and does not trap it, focus is visible;
//   - a 401 on an app page ends the UI session with "Your session has expired";
//   - tenant B's admin sees none of tenant A's spaces, apps (also by direct link), reload
//     schedules or audit events.
// Screenshots of every step: $E2E_ARTIFACTS/apps-*.png.
import { createServer, request } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { artifacts, assert, checkLabels, env, launchBrowser, screenshots, snapAll } from './lib.mjs';

const urlA = env('TSR_URL');
const port = new URL(urlA).port;
const credsA = JSON.parse(readFileSync(env('TSR_CREDS'), 'utf8'));
const hostB = env('TSR_B_HOST');
const urlB = `http://${hostB}:${port}`;
const credsB = JSON.parse(env('TSR_B_CREDS'));
const out = artifacts();
const snap = screenshots(out, 'apps-');

let passed = 0;
let failed = 0;
const t0 = Date.now();
const log = [];

function ok(msg) {
  passed++;
  const line = `ok ${passed + failed} - ${msg} (${((Date.now() - t0) / 1000).toFixed(1)}s)`;
  log.push(line);
  console.log(line);
}

/** A REST call through the ingress with an API key (and a Host header for tenant B). */
function rest(method, path, { key = credsA.apiKey, host, body } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(urlA);
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers = { Authorization: `Bearer ${key}`, Accept: 'application/json' };
    if (host) headers.Host = host;
    if (data) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(data.length);
    }
    const r = request({ host: u.hostname, port: u.port, path, method, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try {
          json = text ? JSON.parse(text) : null;
        } catch {
          json = null;
        }
        resolve({ status: res.statusCode, json, text });
      });
    });
    r.on('error', reject);
    if (data) r.write(data);
    r.end();
  });
}

async function signIn(page, email, password) {
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByTestId('user-email').waitFor();
}

/** Replace the editor's script (select all + type would be slow for long text: fill). */
async function setScript(page, text) {
  const ta = page.getByLabel('Load script');
  await ta.fill(text);
}

// A stand-in OIDC provider: only its discovery document (identity fetches it when a sign-in
// starts, which is what "Test connection" does) and an authorization endpoint that records the
// browser's arrival.
const authHits = [];
const idpServer = createServer((req, res) => {
  const base = `http://127.0.0.1:${idpServer.address().port}`;
  if (req.url === '/.well-known/openid-configuration') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(
      JSON.stringify({
        issuer: base,
        authorization_endpoint: `${base}/authorize`,
        token_endpoint: `${base}/token`,
        jwks_uri: `${base}/jwks`,
        response_types_supported: ['code'],
      }),
    );
  } else if (req.url.startsWith('/authorize')) {
    authHits.push(new URL(req.url, base));
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end('<!doctype html><title>Stand-in provider</title><h1>Stand-in provider sign-in</h1>');
  } else {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((r) => idpServer.listen(0, '127.0.0.1', r));
const idpBase = `http://127.0.0.1:${idpServer.address().port}`;

const browser = await launchBrowser({ hostB });

const stamp = Date.now();
const appName = `e2e-dle-${stamp}`;
const spaceName = `e2e-space-${stamp}`;
const idpName = `Stand-in IdP ${stamp}`;
const idpSecret = `secret-${stamp}-do-not-show`;
let appId = null;

const GOOD = `// Sales and their countries
Sales:
LOAD * INLINE [
Country, Amount
Sweden, 10
Norway, 20
Denmark, 5
];

Countries:
LOAD * INLINE [
Country, Region
Sweden, Nordics
Norway, Nordics
];
`;

try {
  // ---- setup through the API: an app in tenant A's personal space, a shared space ------------
  let r = await rest('POST', '/api/v1/apps', { body: { attributes: { name: appName } } });
  assert(r.status === 200 || r.status === 201, `create app: ${r.status} ${r.text}`);
  appId = r.json.attributes.id;
  r = await rest('POST', '/api/v1/spaces', { body: { name: spaceName, type: 'shared' } });
  assert(r.status === 201 || r.status === 200, `create space: ${r.status} ${r.text}`);

  const ctxA = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctxA.newPage();
  page.setDefaultTimeout(20_000);
  await page.goto(urlA + '/');
  await signIn(page, credsA.user, credsA.password);

  // ---- 1. the hub links to the data load editor --------------------------------------------
  await page.getByLabel('Search apps').fill(appName);
  await page.getByRole('link', { name: `Data load editor of ${appName}` }).click();
  await page.getByRole('heading', { name: 'Data load editor', level: 1 }).waitFor();
  const ta = page.getByLabel('Load script');
  await ta.waitFor();
  await page.getByTestId('app-name').getByText(appName).waitFor();
  await checkLabels(page, 'data load editor');
  assert(new URL(page.url()).pathname === `/apps/${appId}/load-script`, `editor URL ${page.url()}`);
  ok('the hub links an app to its data load editor (/apps/<id>/load-script), which opens the app in the engine');

  // ---- 2. a LOAD * INLINE script: highlighted, numbered, saved, reloaded with a live log ----
  await setScript(page, GOOD);
  const gutter = await page.locator('.script-gutter > div').count();
  assert(gutter === GOOD.split('\n').length, `line numbers: ${gutter}`);
  assert((await page.locator('.script-highlight .tok-keyword', { hasText: 'LOAD' }).count()) === 2, 'LOAD highlighted as a keyword');
  assert((await page.locator('.script-highlight .tok-comment').count()) === 1, 'comment highlighted');
  await snap(page, 'editor-script');
  const reloadBtn = page.getByRole('button', { name: 'Save and reload' });
  const tReload = Date.now();
  await reloadBtn.click();
  await page.getByTestId('dle-status').getByText('The script was saved.').waitFor();
  const statusEl = page.getByTestId('dle-reload-status');
  await statusEl.waitFor();
  const firstStatus = await statusEl.innerText();
  assert(/QUEUED|RELOADING|SUCCEEDED/.test(firstStatus), `first status: ${firstStatus}`);
  await statusEl.getByText('SUCCEEDED').waitFor({ timeout: 60_000 });
  const reloadMs = Date.now() - tReload;
  const logText = await page.getByTestId('dle-log').innerText();
  assert(logText.length > 0 && !/^\(no log\)$/.test(logText), `log: ${logText}`);
  await snap(page, 'editor-reload-succeeded');
  // The script is stored: a fresh page load reads it back from the engine.
  await page.reload();
  await page.getByLabel('Load script').waitFor();
  assert((await page.getByLabel('Load script').inputValue()) === GOOD, 'the saved script reads back');
  ok(`a LOAD * INLINE script is highlighted with line numbers, saved (SetScript+DoSave) and reloaded; status and log shown live (${reloadMs} ms to SUCCEEDED)`);

  // ---- 3. the data model viewer: tables, row counts, the key ---------------------------------
  await page.getByRole('navigation', { name: 'App pages' }).getByRole('link', { name: 'Data model' }).click();
  await page.getByRole('heading', { name: 'Data model', level: 1 }).waitFor();
  await page.getByTestId('dm-table').first().waitFor();
  const cards = await page.getByTestId('dm-table').allInnerTexts();
  const sales = cards.find((c) => c.startsWith('Sales'));
  const countries = cards.find((c) => c.startsWith('Countries'));
  assert(sales && /3 rows · 2 fields/.test(sales), `Sales card: ${sales}`);
  assert(countries && /2 rows · 2 fields/.test(countries), `Countries card: ${countries}`);
  const fieldRows = await page.getByTestId('dm-field-list').locator('tbody tr').allInnerTexts();
  const country = fieldRows.find((t) => t.startsWith('Country'));
  assert(country && /Sales, Countries|Countries, Sales/.test(country) && /yes/.test(country), `Country field: ${country}`);
  assert(/1 key \(Country\)/.test(await page.locator('.lead').innerText()), 'the key is named');
  await snap(page, 'data-model');
  ok('the data model viewer shows Sales (3 rows) and Countries (2 rows) with Country as their key');

  // ---- 4. an error in the script points at its line ----------------------------------------
  await page.getByRole('navigation', { name: 'App pages' }).getByRole('link', { name: 'Data load editor' }).click();
  await page.getByLabel('Load script').waitFor();
  const BAD = `Sales:\nLOAD * INLINE [\nCountry, Amount\nSweden, 10\n];\n\n// the next statement reads a table that does not exist\nBroken: LOAD Country, Amount RESIDENT NoSuchTable;\n`;
  await setScript(page, BAD);
  await page.getByRole('button', { name: 'Save and reload' }).click();
  await page.getByTestId('dle-reload-status').getByText(/FAILED/).waitFor({ timeout: 60_000 });
  const errLine = await page.getByTestId('dle-error-line').innerText();
  const m = /Error on line (\d+)/.exec(errLine);
  assert(m, `error line notice: ${errLine}`);
  const n = Number(m[1]);
  assert(n === 8, `the error names line ${n}, the bad statement is on line 8: ${errLine}`);
  assert((await page.locator('.gutter-error').innerText()).trim() === '8', 'gutter marks line 8');
  assert((await page.locator('.script-highlight .line-error').innerText()).includes('NoSuchTable'), 'the marked line is the bad one');
  await page.getByRole('button', { name: 'Go to line 8' }).click();
  const sel = await page.evaluate(() => {
    const t = document.getElementById('load-script');
    return t.value.slice(t.selectionStart, t.selectionEnd);
  });
  assert(sel.includes('NoSuchTable') && (await page.evaluate(() => document.activeElement?.id)) === 'load-script', `go to line selects it: ${sel}`);
  await snap(page, 'editor-error-line');
  ok(`a failing script's reload names its line (${errLine.split('\n')[0].trim()}); the gutter and the line are marked, "Go to line" selects it`);

  // ---- 5. keyboard: Tab reaches the editor, leaves it again, focus is visible ---------------
  await page.getByRole('navigation', { name: 'App pages' }).getByRole('link', { name: 'Data load editor' }).focus();
  let reached = false;
  for (let i = 0; i < 12 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = (await page.evaluate(() => document.activeElement?.id)) === 'load-script';
  }
  assert(reached, 'Tab reaches the script editor');
  const outline = await page.evaluate(() => getComputedStyle(document.querySelector('.script-editor')).outlineStyle);
  assert(outline !== 'none', `focus is visible around the editor: ${outline}`);
  await snap(page, 'editor-keyboard-focus');
  await page.keyboard.press('Tab');
  assert((await page.evaluate(() => document.activeElement?.id)) !== 'load-script', 'Tab leaves the editor (no keyboard trap)');
  ok('keyboard: Tab reaches the script editor with a visible focus ring and moves on (no trap)');
  // The highlighted copy and the line numbers follow the textarea's scrolling exactly (a long
  // script scrolled to its bottom-right corner).
  const long = Array.from({ length: 300 }, (_, i) => `LET v${i} = '${'x'.repeat(i % 7 === 0 ? 250 : 10)}'; // line ${i + 1}`).join('\n');
  await setScript(page, long);
  const pos = await page.evaluate(() => {
    const t = document.getElementById('load-script');
    t.scrollTop = 1e9;
    t.scrollLeft = 1e9;
    t.dispatchEvent(new Event('scroll'));
    const h = document.querySelector('.script-highlight');
    const g = document.querySelector('.script-gutter');
    return { t: [t.scrollTop, t.scrollLeft], h: [h.scrollTop, h.scrollLeft], g: g.scrollTop, lines: g.children.length };
  });
  assert(pos.t[0] > 0 && pos.t[1] > 0 && pos.h[0] === pos.t[0] && pos.h[1] === pos.t[1] && pos.g === pos.t[0] && pos.lines === 300, `overlay alignment: ${JSON.stringify(pos)}`);
  await snap(page, 'editor-long-script-scrolled');
  ok(`a 300-line script: the highlighting and line numbers scroll with the text (top ${pos.t[0]} px, left ${pos.t[1]} px)`);
  // Unsaved changes: following a link inside the app asks first (dismissed: the page stays).
  await setScript(page, GOOD + '// not saved\n');
  let asked = null;
  page.once('dialog', (d) => {
    asked = d.message();
    void d.dismiss();
  });
  await page.getByRole('navigation', { name: 'App pages' }).getByRole('link', { name: 'Data model' }).click();
  await page.waitForTimeout(300);
  assert(asked && /unsaved changes/i.test(asked), `no question before leaving unsaved changes: ${asked}`);
  assert(new URL(page.url()).pathname.endsWith('/load-script'), `left the editor: ${page.url()}`);
  ok('leaving the editor with unsaved changes asks first; saying no keeps the page and the text');
  // Put the good script back (the schedule below reloads it).
  await setScript(page, GOOD);
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await page.getByTestId('dle-status').waitFor();

  // ---- 6. the RRULE builder saves a reload task ---------------------------------------------
  await page.getByRole('navigation', { name: 'App pages' }).getByRole('link', { name: 'Reload schedules' }).click();
  await page.getByRole('heading', { name: 'Reload schedules', level: 1 }).waitFor();
  await page.getByLabel('Repeat').selectOption('WEEKLY');
  await page.getByLabel('Every how many weeks').fill('2');
  await page.getByRole('checkbox', { name: 'Monday' }).check();
  await page.getByRole('checkbox', { name: 'Wednesday' }).check();
  await page.getByLabel('Time of day').fill('06:30');
  await page.getByLabel('Time zone').selectOption('Europe/Berlin');
  await checkLabels(page, 'reload schedules');
  const rrule = await page.getByTestId('rt-rrule').innerText();
  assert(rrule === 'RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;BYHOUR=6;BYMINUTE=30', `built ${rrule}`);
  const sentence = await page.getByTestId('rt-describe').innerText();
  assert(/Every 2 weeks on Monday and Wednesday at 06:30, Europe\/Berlin/.test(sentence), sentence);
  await snap(page, 'rrule-builder');
  // An impossible schedule is explained, not sent.
  await page.getByRole('checkbox', { name: 'Monday' }).uncheck();
  await page.getByRole('checkbox', { name: 'Wednesday' }).uncheck();
  await page.getByRole('button', { name: 'Save schedule' }).click();
  await page.getByTestId('rt-form-error').getByText('Choose at least one weekday.').waitFor();
  await page.getByRole('checkbox', { name: 'Monday' }).check();
  await page.getByRole('checkbox', { name: 'Wednesday' }).check();
  await page.getByRole('button', { name: 'Save schedule' }).click();
  await page.getByTestId('rt-status').waitFor();
  await page.getByTestId('rt-task').getByText(rrule).waitFor();
  r = await rest('GET', `/api/v1/reload-tasks?appId=${appId}`);
  const task = r.json?.data?.find((t) => (t.recurrence ?? []).includes(rrule));
  assert(task && task.timeZone === 'Europe/Berlin' && task.state === 'Enabled' && task.nextExecutionTime, `task via API: ${r.text}`);
  const next = new Date(task.nextExecutionTime);
  const local = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', weekday: 'short', hour: '2-digit', minute: '2-digit', hour12: false }).format(next);
  assert(/^(Mon|Wed) 06:30$/.test(local), `next run ${task.nextExecutionTime} is ${local} in Berlin`);
  // The other frequencies: the builder's line, as saved, is what the service (libical) accepts
  // and schedules at the built local time.
  const parts = (d, tz) =>
    Object.fromEntries(
      new Intl.DateTimeFormat('en-GB', { timeZone: tz, weekday: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false })
        .formatToParts(d)
        .map((p) => [p.type, p.value]),
    );
  const cases = [
    { freq: 'HOURLY', unit: 'hours', every: '3', time: '00:15', tz: 'UTC', want: 'RRULE:FREQ=HOURLY;INTERVAL=3;BYMINUTE=15', at: (p) => p.minute === '15' },
    {
      freq: 'DAILY', unit: 'days', every: '1', time: '22:05', tz: 'Asia/Tokyo', days: ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday'],
      want: 'RRULE:FREQ=DAILY;INTERVAL=1;BYDAY=MO,TU,WE,TH,FR;BYHOUR=22;BYMINUTE=5',
      at: (p) => ['Mon', 'Tue', 'Wed', 'Thu', 'Fri'].includes(p.weekday) && p.hour === '22' && p.minute === '05',
    },
    { freq: 'MONTHLY', unit: 'months', every: '1', time: '01:00', tz: 'America/New_York', monthDay: '31', want: 'RRULE:FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=31;BYHOUR=1;BYMINUTE=0', at: (p) => p.day === '31' && p.hour === '01' && p.minute === '00' },
  ];
  for (const c of cases) {
    await page.getByLabel('Repeat').selectOption(c.freq);
    await page.getByLabel(`Every how many ${c.unit}`).fill(c.every);
    await page.getByLabel(c.freq === 'HOURLY' ? 'At time (minute is used)' : 'Time of day').fill(c.time);
    if (c.monthDay) await page.getByLabel('Day of the month').fill(c.monthDay);
    if (c.freq === 'DAILY') {
      for (const d of ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday']) await page.getByRole('checkbox', { name: d }).setChecked(c.days.includes(d));
    }
    await page.getByLabel('Time zone').selectOption(c.tz);
    const built = await page.getByTestId('rt-rrule').innerText();
    assert(built === c.want, `${c.freq}: built ${built}, want ${c.want}`);
    await page.getByRole('button', { name: 'Save schedule' }).click();
    await page.getByTestId('rt-task').getByText(c.want).waitFor();
    const tl = await rest('GET', `/api/v1/reload-tasks?appId=${appId}`);
    const t = tl.json.data.find((x) => (x.recurrence ?? []).includes(c.want));
    assert(t && t.timeZone === c.tz && t.nextExecutionTime, `${c.freq} task: ${tl.text}`);
    const p = parts(new Date(t.nextExecutionTime), c.tz);
    assert(c.at(p), `${c.freq}: next run ${t.nextExecutionTime} is ${JSON.stringify(p)} in ${c.tz}`);
  }
  // Delete one in the UI.
  const hourly = page.getByTestId('rt-task').filter({ hasText: cases[0].want });
  await hourly.getByRole('button', { name: /^Delete Every/ }).click();
  await hourly.getByRole('button', { name: 'Yes, delete' }).click();
  await page.getByTestId('rt-status').getByText('The schedule was deleted.').waitFor();
  r = await rest('GET', `/api/v1/reload-tasks?appId=${appId}`);
  assert(!r.text.includes(cases[0].want) && r.json.data.length === 3, `after delete: ${r.text}`);
  // The weekly task reads back as a sentence; disabled and enabled again in the UI (PUT).
  const weekly = page.getByTestId('rt-task').filter({ hasText: rrule });
  assert((await weekly.innerText()).includes('Every 2 weeks on Monday and Wednesday at 06:30, Europe/Berlin'), 'the task reads as a sentence');
  await weekly.getByRole('button', { name: /^Disable Every 2 weeks/ }).click();
  await weekly.getByText('Disabled', { exact: true }).waitFor();
  r = await rest('GET', `/api/v1/reload-tasks/${task.id}`);
  assert(r.json.state === 'Disabled' && r.json.recurrence[0] === rrule && r.json.timeZone === 'Europe/Berlin', `disabled: ${r.text}`);
  await weekly.getByRole('button', { name: /^Enable Every 2 weeks/ }).click();
  await weekly.getByText('Enabled', { exact: true }).waitFor();
  r = await rest('GET', `/api/v1/reload-tasks/${task.id}`);
  assert(r.json.state === 'Enabled', `enabled: ${r.text}`);
  await page.getByTestId('rt-task').filter({ hasText: rrule }).getByRole('button', { name: 'Runs' }).click();
  await page.getByTestId('rt-runs').waitFor();
  // A task that fires (once, in 2 s, made through the API): its run appears in "Runs".
  const once = await rest('POST', '/api/v1/reload-tasks', {
    body: { appId, timeZone: 'UTC', startDateTime: new Date(Date.now() + 2000).toISOString().slice(0, 19) },
  });
  assert(once.status === 201, `one-shot task: ${once.text}`);
  let fired = null;
  for (let i = 0; i < 60 && !fired; i++) {
    await new Promise((res) => setTimeout(res, 500));
    const rl = await rest('GET', `/api/v1/reloads?appId=${appId}&limit=20`);
    fired = rl.json?.data?.find((x) => x.taskId === once.json.id && ['SUCCEEDED', 'FAILED'].includes(x.status)) ?? null;
  }
  assert(fired && fired.status === 'SUCCEEDED', `the one-shot task's reload: ${JSON.stringify(fired)}`);
  await page.reload();
  const onceRow = page.getByTestId('rt-task').filter({ hasText: 'Once, UTC' });
  await onceRow.getByRole('button', { name: 'Runs of Once, UTC' }).click();
  await page.getByTestId('rt-runs').getByText('SUCCEEDED').waitFor();
  const runsText = await page.getByTestId('rt-runs').innerText();
  await snap(page, 'reload-task-runs');
  await snap(page, 'reload-task-saved');
  ok(`the RRULE builder produced ${rrule} in Europe/Berlin; the task is saved (next run ${local} Berlin time) and lists its runs; hourly, weekday-daily (Asia/Tokyo) and monthly-31st (America/New_York) rules are accepted and scheduled at the built local time; a schedule is disabled, enabled and deleted; a task that fired lists its run (${runsText.split('\n')[1] ?? ''})`);

  // ---- 7. identity providers: create, secret never shown, test connection --------------------
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Identity providers' }).click();
  await page.getByRole('heading', { name: 'Identity providers', level: 1 }).waitFor();
  await page.getByRole('button', { name: 'Add identity provider' }).click();
  const dlg = page.getByRole('dialog');
  await dlg.getByLabel('Name (shown on the sign-in button)').fill(idpName);
  await dlg.getByLabel('Discovery URL').fill(`${idpBase}/.well-known/openid-configuration`);
  await dlg.getByLabel('Client id').fill('tessera-e2e');
  await dlg.getByLabel('Client secret').fill(idpSecret);
  await checkLabels(page, 'add identity provider');
  await dlg.getByRole('button', { name: 'Add', exact: true }).click();
  await page.getByTestId('idp-status').waitFor();
  const row = page.getByTestId('idp-row').filter({ hasText: idpName });
  await row.waitFor();
  assert(!(await page.content()).includes(idpSecret), 'the client secret is not shown');
  r = await rest('GET', '/api/v1/identity-providers');
  assert(r.status === 200 && !r.text.includes(idpSecret), 'the API never returns the secret');
  const idp = r.json.data.find((p) => p.description === idpName);
  assert(idp, `created idp: ${r.text}`);
  await row.getByRole('button', { name: `Test connection of ${idpName}` }).click();
  await row.getByTestId('idp-test-result').getByText(/Connection works/).waitFor();
  await snap(page, 'idp-test-ok');
  // A provider whose discovery is unreachable: the test says so.
  const broken = await rest('POST', '/api/v1/identity-providers', {
    body: { protocol: 'OIDC', interactive: true, description: `Broken ${stamp}`, options: { discoveryUrl: 'http://127.0.0.1:1/.well-known/openid-configuration', clientId: 'x', clientSecret: 'y' } },
  });
  assert(broken.status === 201, `broken idp: ${broken.text}`);
  await page.reload();
  const brokenRow = page.getByTestId('idp-row').filter({ hasText: `Broken ${stamp}` });
  await brokenRow.getByRole('button', { name: /Test connection/ }).click();
  const failText = await brokenRow.getByTestId('idp-test-result').innerText();
  assert(/test failed/i.test(failText), `broken test: ${failText}`);
  await snap(page, 'idp-test-failed');
  ok(`identity providers: created with a write-only secret; "Test connection" works against a stand-in provider and explains a broken one (${failText.trim()})`);

  // ---- 8. the sign-in page offers "Sign in with <IdP>" ---------------------------------------
  const ctxS = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const ps = await ctxS.newPage();
  ps.setDefaultTimeout(20_000);
  await ps.goto(urlA + '/');
  await ps.getByRole('heading', { name: 'Sign in' }).waitFor();
  const listing = await rest('GET', '/api/v1/identity/oidc/providers');
  assert(listing.status === 200 && !listing.text.includes(idpSecret) && !listing.text.includes(idpBase), `public sign-in options: ${listing.status} ${listing.text}`);
  {
    const btn = ps.getByRole('link', { name: `Sign in with ${idpName}` });
    await btn.waitFor();
    await snap(ps, 'signin-with-idp');
    await btn.click();
    await ps.getByRole('heading', { name: 'Stand-in provider sign-in' }).waitFor();
    const hit = authHits[authHits.length - 1];
    assert(hit.searchParams.get('client_id') === 'tessera-e2e', `client_id ${hit}`);
    assert(hit.searchParams.get('redirect_uri')?.endsWith(`/api/v1/identity/oidc/${idp.id}/callback`), `redirect_uri ${hit}`);
    assert(hit.searchParams.get('code_challenge_method') === 'S256', 'PKCE');
    // Tenant B's sign-in page does not offer tenant A's provider.
    await ps.goto(urlB + '/');
    await ps.getByRole('heading', { name: 'Sign in' }).waitFor();
    await ps.waitForTimeout(300);
    assert((await ps.getByRole('link', { name: `Sign in with ${idpName}` }).count()) === 0, "tenant B's sign-in offers A's provider");
    ok('the sign-in page shows "Sign in with <IdP>" for the active provider (GET /api/v1/identity/oidc/providers, public) and starts the OIDC sign-in at the provider (client_id, redirect_uri, PKCE); tenant B\'s sign-in page does not offer it');
  }
  await ctxS.close();
  // Deactivated in the UI: no longer offered on the sign-in page.
  const idpRow = page.getByTestId('idp-row').filter({ hasText: idpName });
  await idpRow.getByRole('button', { name: `Deactivate ${idpName}` }).click();
  await idpRow.getByText('inactive', { exact: true }).waitFor();
  r = await rest('GET', '/api/v1/identity/oidc/providers');
  assert(r.status === 200 && !r.text.includes(idpName) && r.text.includes(`Broken ${stamp}`), `after deactivate: ${r.text}`);
  // Deactivated and deleted in the UI.
  await page.getByTestId('idp-row').filter({ hasText: idpName }).getByRole('button', { name: `Delete ${idpName}` }).click();
  await page.getByRole('button', { name: 'Yes, delete' }).click();
  await page.getByTestId('idp-status').getByText(/was deleted/).waitFor();
  await rest('DELETE', `/api/v1/identity-providers/${broken.json.id}`);
  r = await rest('GET', '/api/v1/identity-providers');
  assert(!r.json.data.some((p) => p.description === idpName), 'deleted');
  ok('an identity provider is deactivated (gone from the sign-in options) and deleted from the admin page');

  // ---- 9. a 401 on an app page: "Your session has expired" ----------------------------------
  await page.goto(`${urlA}/apps/${appId}/data-model`);
  await page.getByTestId('dm-table').first().waitFor();
  await ctxA.clearCookies();
  await page.getByRole('button', { name: 'Refresh' }).click();
  await page.getByTestId('signin-notice').waitFor();
  const notice = await page.getByTestId('signin-notice').innerText();
  assert(/session has expired/i.test(notice), `expiry notice: ${notice}`);
  await snap(page, 'session-expired');
  ok('a 401 on an app page returns to sign-in with "Your session has expired…"');
  await ctxA.close();

  // ---- 10. tenant B sees none of tenant A's spaces, apps, schedules or audit events ----------
  const ctxB = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const pb = await ctxB.newPage();
  pb.setDefaultTimeout(20_000);
  await pb.goto(urlB + '/');
  await signIn(pb, credsB.user, credsB.password);
  await pb.locator('[data-testid=apps], [data-testid=apps-empty], [data-testid=hub-unavailable]').first().waitFor();
  let html = await pb.content();
  assert(!html.includes(appName) && !html.includes(spaceName), "tenant B's hub shows tenant A's app or space");
  await snap(pb, 'tenant-b-hub');
  await pb.goto(`${urlB}/apps/${appId}/load-script`);
  await pb.getByTestId('dle-error').waitFor();
  const dleErr = await pb.getByTestId('dle-error').innerText();
  assert(/not found/i.test(dleErr), `tenant B opening A's app: ${dleErr}`);
  assert(!(await pb.content()).includes('Sweden'), "tenant B sees A's script");
  await snap(pb, 'tenant-b-editor-not-found');
  await pb.goto(`${urlB}/apps/${appId}/data-model`);
  await pb.getByTestId('dm-error').waitFor();
  assert(/not found/i.test(await pb.getByTestId('dm-error').innerText()), "tenant B's data model of A's app");
  assert(!(await pb.content()).includes('Countries'), "tenant B sees A's tables");
  await pb.goto(`${urlB}/apps/${appId}/reload-tasks`);
  await pb.getByRole('heading', { name: 'Reload schedules', level: 1 }).waitFor();
  await pb.locator('[data-testid=rt-error], .empty').first().waitFor();
  assert(!(await pb.content()).includes('BYDAY=MO,WE'), "tenant B sees A's reload task");
  await snap(pb, 'tenant-b-schedules');
  const hB = `${hostB}:${port}`;
  const sB = await rest('GET', '/api/v1/spaces?limit=100', { key: credsB.apiKey, host: hB });
  assert(sB.status === 200 && !sB.text.includes(spaceName), `B's spaces: ${sB.status}`);
  const iB = await rest('GET', '/api/v1/items?resourceType=app&limit=100', { key: credsB.apiKey, host: hB });
  assert(iB.status === 200 && !iB.text.includes(appName) && !iB.text.includes(appId), `B's items: ${iB.status}`);
  const aB = await rest('GET', `/api/v1/apps/${appId}`, { key: credsB.apiKey, host: hB });
  assert(aB.status === 404, `B reading A's app: ${aB.status}`);
  const tB = await rest('GET', `/api/v1/reload-tasks/${task.id}`, { key: credsB.apiKey, host: hB });
  assert(tB.status === 404, `B reading A's task: ${tB.status}`);
  const auB = await rest('GET', '/api/v1/audits?limit=100', { key: credsB.apiKey, host: hB });
  const auA = await rest('GET', '/api/v1/audits?limit=100');
  let auditNote = 'audit not deployed';
  if (auB.status === 200) {
    assert(!auB.text.includes(appId) && !auB.text.includes(appName) && !auB.text.includes(spaceName), "tenant B's audit events include tenant A's");
    await pb.goto(`${urlB}/admin/audit`);
    await pb.locator('[data-testid=audit-table], [data-testid=audit-empty]').first().waitFor();
    html = await pb.content();
    assert(!html.includes(appName) && !html.includes(spaceName) && !html.includes(appId), "tenant B's audit viewer shows A's events");
    await snap(pb, 'tenant-b-audit');
    auditNote = `B's ${auB.json.data.length} audit events, none of A's ${auA.json?.data?.length ?? '?'}`;
  }
  ok(`tenant B sees none of tenant A's spaces, apps (hub, direct link to the editor and data model: not found), reload tasks or audit events (${auditNote})`);
  await ctxB.close();

  // ---- 11. a phone-sized window: the app pages fit without horizontal scrolling -------------
  const ctxN = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const pn = await ctxN.newPage();
  pn.setDefaultTimeout(20_000);
  await pn.goto(urlA + '/');
  await pn.getByLabel('Email').fill(credsA.user);
  await pn.getByLabel('Password').fill(credsA.password);
  await pn.getByRole('button', { name: 'Sign in', exact: true }).click();
  await pn.getByRole('button', { name: 'Menu' }).waitFor();
  for (const [path, ready] of [
    [`/apps/${appId}/load-script`, () => pn.getByLabel('Load script').waitFor()],
    [`/apps/${appId}/data-model`, () => pn.getByTestId('dm-table').first().waitFor()],
    [`/apps/${appId}/reload-tasks`, () => pn.getByTestId('rt-task').first().waitFor()],
    ['/admin/identity-providers', () => pn.locator('[data-testid=idp-list], [data-testid=idp-empty]').first().waitFor()],
  ]) {
    await pn.goto(urlA + path);
    await ready();
    const over = await pn.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(over <= 1, `${path} scrolls sideways by ${over} px at 390 px`);
  }
  await snap(pn, 'narrow-reload-schedules');
  ok('at 390 px the data load editor, data model, reload schedules and identity providers pages fit the window');
  await ctxN.close();
} catch (e) {
  failed++;
  console.log(`not ok ${passed + failed} - ${e.message}`);
  await snapAll(browser, snap);
} finally {
  await browser.close();
  idpServer.close();
}
writeFileSync(join(out, 'apps-results.txt'), log.join('\n') + '\n');
console.log(`${passed} passed, ${failed} failed (${((Date.now() - t0) / 1000).toFixed(1)}s, screenshots in ${out})`);
process.exit(failed === 0 ? 0 : 1);
