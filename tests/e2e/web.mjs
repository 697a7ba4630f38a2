// End-to-end test of the web app (web/) in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core) against a real local stack started by
// tests/integration/test_web.sh. Every step leaves a screenshot in $E2E_ARTIFACTS.
//
// Environment:
//   TSR_URL          http://127.0.0.1:<port>   tenant A (the default tenant)
//   TSR_CREDS        tenant A's credentials.json (user, password, apiKey)
//   TSR_B_HOST       a hostname of tenant B (resolved to 127.0.0.1 inside Chromium)
//   TSR_B_CREDS      tenant B's admin as JSON ({user, password, apiKey})
//   E2E_ARTIFACTS    directory for screenshots (created)
//   CHROMIUM         browser binary (default /usr/bin/chromium)
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { request } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { artifacts, assert, checkLabels, env, launchBrowser, screenshots, sleep, snapAll } from './lib.mjs';

const urlA = env('TSR_URL');
const port = new URL(urlA).port;
const credsA = JSON.parse(readFileSync(env('TSR_CREDS'), 'utf8'));
const hostB = env('TSR_B_HOST');
const urlB = `http://${hostB}:${port}`;
const credsB = JSON.parse(env('TSR_B_CREDS'));
const out = artifacts();
const snap = screenshots(out);

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

// ---- helpers outside the browser (curl-equivalent checks through the same ingress) --------

/** HTTP status of `curl -H 'Authorization: Bearer <token>' <base><path>`. */
// nginx keeps identity's positive answers this long (deploy/local/stack): a revoked key or an
// ended session is refused within it, not at once.
const authnCacheMs = Number(process.env.TSR_AUTHN_CACHE_SECONDS ?? 5) * 1000;

async function bearer(token, path = '/api/v1/users/me', base = urlA) {
  const code = execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', '-H', `Authorization: Bearer ${token}`, base + path], { encoding: 'utf8' });
  return Number(code);
}

/** Status of a GET with an explicit Host header (fetch may not set Host). */
function statusWithHost(path, host, headers) {
  return new Promise((resolve, reject) => {
    const u = new URL(urlA);
    const r = request({ host: u.hostname, port: u.port, path, headers: { ...headers, Host: host } }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    r.on('error', reject);
    r.end();
  });
}

function base32Decode(s) {
  const alpha = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of s.replace(/=+$/, '').toUpperCase()) {
    const v = alpha.indexOf(c);
    if (v < 0) throw new Error(`bad base32 ${c}`);
    bits += v.toString(2).padStart(5, '0');
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}
function totp(secret, step) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = createHmac('sha1', base32Decode(secret)).update(msg).digest();
  const o = h[h.length - 1] & 15;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1_000_000).padStart(6, '0');
}
const stepNow = () => Math.floor(Date.now() / 1000 / 30);

// ---- browser ---------------------------------------------------------------------------------

// Tenant B is a second hostname of the same ingress (tenants are resolved by Host).
const browser = await launchBrowser({ hostB });

/** Writes to /api/ from the page, and whether each carried the CSRF header. */
function watchWrites(page) {
  const writes = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/') && !['GET', 'HEAD'].includes(r.method())) {
      writes.push({ method: r.method(), path: u.pathname, csrf: Boolean(r.headers()['qlik-csrf-token']) });
    }
  });
  return writes;
}

async function signIn(page, email, password, { keyboard = false } = {}) {
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  if (keyboard) {
    // Keyboard only: the email field has focus on load; Tab to the password, Enter submits.
    await page.keyboard.type(email);
    await page.keyboard.press('Tab');
    await page.keyboard.type(password);
    await page.keyboard.press('Enter');
  } else {
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }
}

const apiKeyDescription = `e2e key ${Date.now()}`;
const keepDescription = `tenant A key (kept) ${Date.now()}`;
const inviteEmail = `analyst-${Date.now()}@a.test`;
const invitePassword = 'correct horse battery staple';
const newPassword = 'staple battery horse correct';
let appName = null;
let spaceName = null;
let dataFileName = null;
let auditAvailable = false;

try {
  // ---- 1. tenant A's admin signs in (keyboard only), wrong password first -------------------
  const ctxA = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctxA.newPage();
  page.setDefaultTimeout(20_000);
  const writes = watchWrites(page);
  await page.goto(urlA + '/');
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await checkLabels(page, 'sign-in');
  await snap(page, 'signin');
  ok('the ingress serves the web app; unauthenticated visitors get the sign-in page');

  await signIn(page, credsA.user, 'not the password');
  await page.getByTestId('signin-error').waitFor();
  const wrong = await page.getByTestId('signin-error').innerText();
  assert(/email or password is not correct/i.test(wrong), `wrong-password message: ${wrong}`);
  await snap(page, 'signin-wrong-password');
  ok('a wrong password shows "The email or password is not correct."');

  await page.reload();
  await signIn(page, credsA.user, credsA.password, { keyboard: true });
  await page.getByTestId('user-email').waitFor();
  await page.waitForURL('**/hub');
  const nav = page.getByRole('navigation', { name: 'Main' });
  for (const item of ['Hub', 'API keys', 'Users']) await nav.getByRole('link', { name: item }).waitFor();
  await snap(page, 'signed-in-hub');
  ok('TenantAdmin signs in with the keyboard alone and sees Hub, API keys and Users');

  // ---- 2. hub: spaces and apps, or a clear "not available" ---------------------------------
  await page.locator('[data-testid=hub-unavailable], [data-testid=apps], [data-testid=apps-empty]').first().waitFor();
  if (await page.getByTestId('hub-unavailable').isVisible()) {
    ok('hub: the spaces service does not answer; the hub says "not available"');
  } else {
    appName = `Sales A ${Date.now()}`;
    await page.getByRole('button', { name: 'Create app' }).click();
    await page.getByRole('dialog').getByLabel('App name').fill(appName);
    await snap(page, 'hub-create-app');
    await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
    await page.getByTestId('hub-status').waitFor();
    await page.getByTestId('apps').getByRole('heading', { name: appName }).waitFor();
    await checkLabels(page, 'hub');
    await snap(page, 'hub-app-created');
    ok('hub: create an app in the personal space; it is listed');

    // Reloads of the app: queue one (status shown live), cancel it, its history and log.
    await page.getByRole('button', { name: `Reloads of ${appName}` }).click();
    const rd = page.getByRole('dialog', { name: `Reloads of ${appName}` });
    await rd.getByRole('button', { name: 'Reload now' }).click();
    await rd.getByTestId('reload-current').getByText(/QUEUED|RELOADING|SUCCEEDED|FAILED/).waitFor();
    if (await rd.getByRole('button', { name: 'Cancel reload' }).isVisible()) {
      await rd.getByRole('button', { name: 'Cancel reload' }).click();
    }
    await rd.getByTestId('reload-current').getByText(/CANCELED|SUCCEEDED|FAILED|EXCEEDED_LIMIT/).waitFor();
    await rd.getByTestId('reload-history').getByText(/CANCELED|SUCCEEDED|FAILED|EXCEEDED_LIMIT/).waitFor();
    await rd.getByRole('button', { name: 'Show log' }).first().click();
    await page.locator('[data-testid=reload-log], dialog [role=alert]').first().waitFor();
    await snap(page, 'hub-app-reloads');
    await page.keyboard.press('Escape');
    await rd.waitFor({ state: 'hidden' });
    ok('hub: reload an app from its card (live status, cancel, history, log)');

    spaceName = `Finance A ${Date.now()}`;
    await page.getByRole('button', { name: 'Create space' }).click();
    const sd = page.getByRole('dialog', { name: 'Create a space' });
    await sd.getByLabel('Space name').fill(spaceName);
    await sd.getByLabel('Type').selectOption('shared');
    await sd.getByRole('button', { name: 'Create' }).click();
    const spacesNav = page.getByRole('navigation', { name: 'Spaces' });
    await spacesNav.getByRole('button', { name: spaceName }).click();
    await page.getByTestId('apps-empty').waitFor();
    const appInSpace = `Budget A ${Date.now()}`;
    await page.getByRole('button', { name: 'Create app' }).click();
    await page.getByRole('dialog').getByLabel('App name').fill(appInSpace);
    assert((await page.getByRole('dialog').getByLabel('Space').inputValue()) !== '', 'the selected space is preselected');
    await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
    await page.getByTestId('apps').getByRole('heading', { name: appInSpace }).waitFor();
    assert((await page.getByTestId('apps').getByRole('heading', { name: appName }).count()) === 0, 'space filter hides the personal app');
    await page.getByLabel('Search apps').fill('no such app');
    await page.getByTestId('apps-empty').waitFor();
    await page.getByLabel('Search apps').fill('');
    await snap(page, 'hub-space-with-app');
    ok('hub: create a shared space and an app in it; the space filter and search narrow the list');

    // A data file into the space, through the upload control (progress bar, then listed).
    dataFileName = `sales-a-${Date.now()}.csv`;
    const rows = ['Country,Region,Sales'];
    for (let i = 0; i < 20000; i++) rows.push(`Country${i % 50},Region${i % 7},${(i * 37) % 1000}`);
    await page.getByLabel('Upload a data file').setInputFiles({ name: dataFileName, mimeType: 'text/csv', buffer: Buffer.from(rows.join('\n') + '\n') });
    await page.getByTestId('datafiles-status').waitFor();
    await page.getByTestId('datafiles-table').getByRole('rowheader', { name: dataFileName }).waitFor();
    await checkLabels(page, 'hub data files');
    await snap(page, 'hub-datafile-uploaded');

    // Rename, then delete the app in the space (both offered by the app's actions).
    const renamed = `${appInSpace} (renamed)`;
    await page.getByRole('button', { name: `Rename ${appInSpace}` }).click();
    await page.getByRole('dialog', { name: 'Rename app' }).getByLabel('New name').fill(renamed);
    await page.getByRole('dialog', { name: 'Rename app' }).getByRole('button', { name: 'Rename' }).click();
    await page.getByTestId('apps').getByRole('heading', { name: renamed }).waitFor();
    await page.getByRole('button', { name: `Delete ${renamed}` }).click();
    await page.getByRole('button', { name: 'Yes, delete' }).click();
    await page.getByTestId('apps-empty').waitFor();
    ok('hub: upload a data file (progress, then listed), rename and delete an app');
  }

  // ---- 3. users list --------------------------------------------------------------------------
  await nav.getByRole('link', { name: 'Users' }).click();
  await page.getByTestId('users-table').getByText(credsA.user).waitFor();
  await checkLabels(page, 'users');
  await snap(page, 'users');
  ok('the users list shows the tenant admin');

  // ---- 4. API key: create, token shown once, works, revoke, stops working -----------------
  await nav.getByRole('link', { name: 'API keys' }).click();
  await page.getByRole('heading', { name: 'API keys', level: 1 }).waitFor();
  await checkLabels(page, 'api-keys');
  await page.getByLabel('Description').fill(apiKeyDescription);
  await page.getByRole('button', { name: 'Create key' }).click();
  const dialog = page.getByRole('dialog', { name: 'Copy your new API key' });
  await dialog.waitFor();
  const token = await page.getByTestId('new-token').inputValue();
  assert(token.length > 20, 'the dialog shows a token');
  await snap(page, 'api-key-created-token-shown-once');
  assert((await bearer(token)) === 200, 'the new token authenticates GET /api/v1/users/me');
  ok('create an API key: the token is shown once and works as Authorization: Bearer');

  await dialog.getByRole('button', { name: 'I have copied the token' }).click();
  await dialog.waitFor({ state: 'hidden' });
  const row = page.getByRole('row').filter({ hasText: apiKeyDescription });
  await row.waitFor();
  assert(!(await page.content()).includes(token), 'the token is not on the page after the dialog closed');
  await page.reload();
  await row.waitFor();
  assert(!(await page.content()).includes(token), 'the token is not shown again after a reload');
  ok('after the dialog closes the token is gone from the page (and after a reload)');

  await row.getByRole('button', { name: `Revoke ${apiKeyDescription}` }).click();
  await row.getByRole('button', { name: 'Yes, revoke' }).click();
  await page.getByTestId('keys-status').waitFor();
  await snap(page, 'api-key-revoked');
  let revokedStatus = await bearer(token);
  for (const end = Date.now() + authnCacheMs + 1000; revokedStatus !== 401 && Date.now() < end; ) {
    await sleep(250);
    revokedStatus = await bearer(token);
  }
  assert(revokedStatus === 401, 'the revoked token answers 401 within the ingress cache period');
  ok('revoke the key in the UI; the token then answers 401 (within the authentication cache period)');

  // A key that stays, so tenant B's admin has something of A's not to see.
  await page.getByLabel('Description').fill(keepDescription);
  await page.getByRole('button', { name: 'Create key' }).click();
  await dialog.waitFor();
  const keepToken = await page.getByTestId('new-token').inputValue();
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  await page.getByRole('row').filter({ hasText: keepDescription }).waitFor();
  ok('the token dialog closes with Escape (keyboard)');

  // Signing in again elsewhere in this browser (as another tab would) replaces the session
  // cookie, so the page's CSRF token is stale: the write answers 403 CSRF-TOKEN-2 once, the
  // app fetches a fresh token from /api/v1/csrf-token and the retry succeeds.
  const relogin = await ctxA.request.post(`${urlA}/api/v1/identity/login`, { data: { email: credsA.user, password: credsA.password } });
  assert(relogin.status() === 204, `second login: ${relogin.status()}`);
  const keyPosts = [];
  const onResp = (r) => {
    if (r.request().method() === 'POST' && new URL(r.url()).pathname === '/api/v1/api-keys') keyPosts.push(r.status());
  };
  page.on('response', onResp);
  const staleDescription = `after re-login ${Date.now()}`;
  await page.getByLabel('Description').fill(staleDescription);
  await page.getByRole('button', { name: 'Create key' }).click();
  await dialog.waitFor();
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  page.off('response', onResp);
  assert(JSON.stringify(keyPosts) === '[403,201]', `POST /api/v1/api-keys statuses: ${JSON.stringify(keyPosts)}`);
  ok('a stale CSRF token (new session from another tab) is refreshed and the write retried once');

  // ---- 5. invite a user without admin roles; role-aware UI ------------------------------------
  await nav.getByRole('link', { name: 'Users' }).click();
  await page.getByRole('button', { name: 'Invite user' }).click();
  const inv = page.getByRole('dialog', { name: 'Invite a user' });
  await inv.getByLabel('Email').fill(inviteEmail);
  await inv.getByLabel('Name (optional)').fill('Ana Analyst');
  await checkLabels(page, 'invite dialog');
  await inv.getByRole('button', { name: 'Invite' }).click();
  const link = await page.getByTestId('invite-link').innerText();
  assert(link.includes('/login/invite#token='), `invite link: ${link}`);
  await page.getByTestId('users-table').getByText(inviteEmail).waitFor();
  await snap(page, 'user-invited');
  ok('invite a user: the invitation link is shown once and the user is listed as invited');


  const ctxU = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const pu = await ctxU.newPage();
  pu.setDefaultTimeout(20_000);
  await pu.goto(link.replace(/^https?:\/\/[^/]+/, urlA));
  await pu.getByRole('heading', { name: 'Welcome to Tessera' }).waitFor();
  await pu.getByLabel('New password').fill(invitePassword);
  await pu.getByLabel('Repeat the password').fill(invitePassword);
  await pu.getByRole('button', { name: 'Set password' }).click();
  await pu.getByTestId('invite-done').waitFor();
  await snap(pu, 'invite-accepted');
  await pu.getByRole('button', { name: 'Go to sign in' }).click();
  await signIn(pu, inviteEmail, invitePassword);
  await pu.getByTestId('user-email').waitFor();
  const navU = pu.getByRole('navigation', { name: 'Main' });
  await navU.getByRole('link', { name: 'Hub' }).waitFor();
  assert((await navU.getByRole('link', { name: 'Users' }).count()) === 0, 'a plain user sees no Users link');
  assert((await navU.getByRole('link', { name: 'API keys' }).count()) === 0, 'a plain user sees no API keys link');
  await pu.goto(urlA + '/admin/users');
  await pu.getByTestId('users-forbidden').waitFor();
  await snap(pu, 'plain-user-no-admin');
  ok('the invited user sets a password, signs in, and sees no admin pages (role-aware UI)');

  // The admin creates a group with the Developer role and puts the user in it: the user's
  // navigation then offers API keys (a role held through a group).
  await nav.getByRole('link', { name: 'Groups' }).click();
  await page.getByLabel('Group name').fill('Developers');
  await page.getByRole('group', { name: 'Roles of its members' }).getByLabel('Developer').check();
  await checkLabels(page, 'groups');
  await page.getByRole('button', { name: 'Create group' }).click();
  await page.getByTestId('groups-table').getByRole('rowheader', { name: 'Developers' }).waitFor();
  await snap(page, 'group-created');
  await nav.getByRole('link', { name: 'Users' }).click();
  await page.getByRole('button', { name: 'Edit Ana Analyst' }).click();
  const ed = page.getByRole('dialog', { name: 'Edit Ana Analyst' });
  await ed.getByRole('group', { name: 'Groups' }).getByLabel('Developers').check();
  await checkLabels(page, 'edit user dialog');
  await snap(page, 'edit-user-groups');
  await ed.getByRole('button', { name: 'Save' }).click();
  await page.getByTestId('users-status').waitFor();
  await pu.goto(urlA + '/hub');
  await navU.getByRole('link', { name: 'API keys' }).waitFor();
  assert((await navU.getByRole('link', { name: 'Users' }).count()) === 0, 'a Developer sees no Users link');
  ok('the admin creates a group with the Developer role and adds the user; the user then sees API keys, still not Users');

  if (spaceName) {
    // Space membership: the user does not see the shared space until the admin adds them.
    await pu.getByRole('navigation', { name: 'Spaces' }).waitFor();
    assert((await pu.getByRole('navigation', { name: 'Spaces' }).getByRole('button', { name: spaceName }).count()) === 0, 'a non-member sees the space');
    await nav.getByRole('link', { name: 'Hub' }).click();
    await page.getByRole('navigation', { name: 'Spaces' }).getByRole('button', { name: spaceName }).click();
    await page.getByRole('button', { name: `Members of ${spaceName}` }).click();
    const md = page.getByRole('dialog', { name: `Members of ${spaceName}` });
    await md.getByLabel('Add a user').selectOption({ label: 'Ana Analyst' });
    await md.getByLabel('consumer', { exact: true }).check();
    await checkLabels(page, 'space members');
    await md.getByRole('button', { name: 'Add member' }).click();
    await md.getByTestId('members-status').waitFor();
    await md.getByRole('list', { name: 'Members' }).getByText('Ana Analyst').waitFor();
    await snap(page, 'space-member-added');
    await page.keyboard.press('Escape');
    await pu.reload();
    await pu.getByRole('navigation', { name: 'Spaces' }).getByRole('button', { name: spaceName }).waitFor();
    ok('space members: the admin adds the user as consumer; the space then appears in the user\'s hub');
  }

  // ---- 6. account page: TOTP enrolment and password change, then sign-in asks for the code --
  await navU.getByRole('link', { name: /your account/ }).click();
  await pu.getByRole('heading', { name: 'Your account' }).waitFor();
  await pu.getByRole('button', { name: 'Set up two-step verification' }).click();
  const secret = (await pu.getByTestId('totp-secret').innerText()).replace(/\s+/g, '');
  assert(/^[A-Z2-7]{16,}$/.test(secret), `TOTP key: ${secret}`);
  // The previous step's code (accepted: one step of drift) keeps the current one unused for sign-in.
  await pu.getByLabel('Code from the app').fill(totp(secret, stepNow() - 1));
  await checkLabels(pu, 'account');
  await pu.getByRole('button', { name: 'Turn on' }).click();
  await pu.getByTestId('totp-done').waitFor();
  await pu.getByLabel('Current password').fill(invitePassword);
  await pu.getByLabel('New password', { exact: true }).fill(newPassword);
  await pu.getByLabel('Repeat the new password').fill(newPassword);
  await pu.getByRole('button', { name: 'Change password' }).click();
  await pu.getByTestId('password-changed').waitFor();
  await snap(pu, 'account-totp-on-password-changed');
  ok('account page: the user turns on two-step verification and changes the password');

  await navU.getByRole('button', { name: 'Sign out' }).click();
  await pu.getByTestId('signin-notice').waitFor();
  await signIn(pu, inviteEmail, newPassword);
  await pu.getByRole('heading', { name: 'Two-step verification' }).waitFor();
  await snap(pu, 'totp-step');
  await pu.getByLabel('Verification code').fill('000000' === totp(secret, stepNow()) ? '111111' : '000000');
  await pu.getByRole('button', { name: 'Verify' }).click();
  await pu.getByTestId('signin-error').waitFor();
  assert(/verification code is not correct/i.test(await pu.getByTestId('signin-error').innerText()), 'wrong TOTP message');
  await pu.getByLabel('Verification code').fill(totp(secret, stepNow()));
  await pu.getByRole('button', { name: 'Verify' }).click();
  await pu.getByTestId('user-email').waitFor();
  ok('with TOTP enrolled, sign-in asks for the code, rejects a wrong one clearly, accepts the right one');

  // The admin disables the user: the user's open session ends with a clear message.
  await nav.getByRole('link', { name: 'Users' }).click();
  await page.getByRole('button', { name: 'Edit Ana Analyst' }).click();
  const ed2 = page.getByRole('dialog', { name: 'Edit Ana Analyst' });
  await ed2.getByLabel('Disabled (cannot sign in)').check();
  await ed2.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('row').filter({ hasText: inviteEmail }).getByText('disabled').waitFor();
  await sleep(authnCacheMs + 1000); // the ingress may answer from its cache until then
  await navU.getByRole('link', { name: 'API keys' }).click();
  await pu.getByTestId('signin-notice').waitFor();
  assert(/expired or was ended/i.test(await pu.getByTestId('signin-notice').innerText()), 'ended-session message');
  await snap(pu, 'disabled-user-session-ended');
  ok("disabling a user in the UI ends that user's open session; the user is told to sign in again");
  await ctxU.close();

  // ---- 6b. audit viewer: the app's creation event (spaces → Kafka → audit), filtered --------
  await nav.getByRole('link', { name: 'Audit' }).click();
  await page.getByRole('heading', { name: 'Audit events', level: 1 }).waitFor();
  await page.locator('[data-testid=audit-unavailable], [data-testid=audit-table], [data-testid=audit-empty]').first().waitFor();
  if (await page.getByTestId('audit-unavailable').isVisible()) {
    auditAvailable = false;
    ok('audit: the audit service does not answer; the viewer says "not available"');
  } else if (appName) {
    auditAvailable = true;
    await checkLabels(page, 'audit');
    // Events arrive asynchronously (outbox → Kafka → audit consumer): re-apply for a while.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const types = await page.getByLabel('Event type').locator('option').allTextContents();
      if (types.includes('com.tessera.v1.app.created')) {
        await page.getByLabel('Event type').selectOption('com.tessera.v1.app.created');
        await page.getByRole('button', { name: 'Apply filters' }).click();
        await page.locator('[data-testid=audit-table], [data-testid=audit-empty]').first().waitFor();
        if ((await page.getByTestId('audit-table').getByText(appName).count()) > 0) break;
      }
      assert(Date.now() < deadline, `no com.tessera.v1.app.created event for ${appName} within 30 s`);
      await page.waitForTimeout(1000);
      await page.reload();
      await page.locator('[data-testid=audit-table], [data-testid=audit-empty]').first().waitFor();
    }
    const rows = await page.getByTestId('audit-table').locator('tbody tr').allInnerTexts();
    assert(rows.every((r) => r.includes('com.tessera.v1.app.created')), 'the event type filter narrows the list');
    await page.getByTestId('audit-table').locator('tbody tr').filter({ hasText: appName }).getByText('Show').click();
    await snap(page, 'audit-app-created');
    ok("audit: the viewer lists the app's creation event, filtered by event type, with details");
  } else {
    auditAvailable = true;
    await snap(page, 'audit');
    ok('audit: the viewer answers (no spaces service, so no app events to look for)');
  }

  // ---- 7. session expiry and sign-out ---------------------------------------------------------
  await ctxA.clearCookies(); // what the browser sees when the session ends server-side
  await nav.getByRole('link', { name: 'API keys' }).click();
  await page.getByTestId('signin-notice').waitFor();
  const expired = await page.getByTestId('signin-notice').innerText();
  assert(/session has expired/i.test(expired), `expiry message: ${expired}`);
  await snap(page, 'session-expired');
  ok('an expired session sends the user to sign-in with "Your session has expired…"');

  await signIn(page, credsA.user, credsA.password);
  await page.getByTestId('user-email').waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByTestId('signin-notice').waitFor();
  assert(/signed out/i.test(await page.getByTestId('signin-notice').innerText()), 'sign-out message');
  await page.reload();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await snap(page, 'signed-out');
  ok('sign-out ends the session: a reload shows the sign-in page');
  const writesOk = writes.filter((w) => w.path !== '/api/v1/identity/login');
  assert(writesOk.length >= 4, `writes seen: ${JSON.stringify(writes)}`);
  assert(writesOk.every((w) => w.csrf), `a write without qlik-csrf-token: ${JSON.stringify(writesOk.filter((w) => !w.csrf))}`);
  ok(`every write from the app (${writesOk.length}: ${[...new Set(writesOk.map((w) => `${w.method} ${w.path.replace(/[0-9a-f]{24}/, ':id')}`))].join(', ')}) carried qlik-csrf-token`);
  await ctxA.close();

  // ---- 8. tenant B's admin sees none of tenant A's data ---------------------------------------
  const ctxB = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const pb = await ctxB.newPage();
  pb.setDefaultTimeout(20_000);
  await pb.goto(urlB + '/');
  await signIn(pb, credsA.user, credsA.password);
  await pb.getByTestId('signin-error').waitFor();
  ok("tenant A's admin cannot sign in on tenant B's hostname");
  await pb.reload();
  await signIn(pb, credsB.user, credsB.password);
  await pb.getByTestId('user-email').waitFor();
  const navB = pb.getByRole('navigation', { name: 'Main' });
  if (appName) {
    await pb.locator('[data-testid=apps], [data-testid=apps-empty]').first().waitFor();
    const hubB = await pb.content();
    assert(!hubB.includes(appName) && !hubB.includes(spaceName), "tenant B's hub lists tenant A's app or space");
    await pb.getByRole('navigation', { name: 'Spaces' }).getByRole('button', { name: 'Personal' }).click();
    await pb.getByRole('heading', { name: 'Data files' }).waitFor();
    await pb.waitForTimeout(300);
    assert(!(await pb.content()).includes(dataFileName), "tenant B sees tenant A's data file");
  }
  await snap(pb, 'tenant-b-hub');
  await navB.getByRole('link', { name: 'Users' }).click();
  await pb.getByTestId('users-table').getByText(credsB.user).waitFor();
  let html = await pb.content();
  assert(!html.includes(credsA.user) && !html.includes(inviteEmail), "tenant B's users list shows tenant A's users");
  await snap(pb, 'tenant-b-users');
  await navB.getByRole('link', { name: 'API keys' }).click();
  await pb.getByRole('heading', { name: 'API keys', level: 1 }).waitFor();
  await pb.locator('[data-testid=keys-table], [data-testid=keys-empty]').first().waitFor();
  html = await pb.content();
  assert(!html.includes(keepDescription) && !html.includes(apiKeyDescription), "tenant B's API keys show tenant A's keys");
  await snap(pb, 'tenant-b-api-keys');
  if (auditAvailable) {
    await navB.getByRole('link', { name: 'Audit' }).click();
    await pb.locator('[data-testid=audit-table], [data-testid=audit-empty]').first().waitFor();
    html = await pb.content();
    assert(!(appName && html.includes(appName)) && !(spaceName && html.includes(spaceName)), "tenant B's audit viewer shows tenant A's events");
    await snap(pb, 'tenant-b-audit');
  }
  assert((await bearer(keepToken, '/api/v1/users/me', urlA)) === 200, "tenant A's kept key works on A");
  const onB = await statusWithHost('/api/v1/users/me', `${hostB}:${port}`, { Authorization: `Bearer ${keepToken}` });
  assert(onB === 401, `tenant A's key on tenant B's host: ${onB}`);
  ok("tenant B's admin sees none of tenant A's users, keys, apps, spaces or audit events; A's key is refused on B's host");
  await ctxB.close();

  // ---- 9. responsive: a narrow window folds the navigation behind a Menu button --------------
  const ctxM = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 });
  const pm = await ctxM.newPage();
  pm.setDefaultTimeout(20_000);
  await pm.goto(urlB + '/');
  await signIn(pm, credsB.user, credsB.password);
  const menu = pm.getByRole('button', { name: 'Menu' });
  await menu.waitFor();
  assert(!(await pm.getByRole('link', { name: 'Users' }).isVisible()), 'nav hidden until Menu is opened');
  await snap(pm, 'narrow-menu-closed');
  await menu.focus();
  await pm.keyboard.press('Enter');
  await pm.getByRole('link', { name: 'Users' }).waitFor();
  assert((await menu.getAttribute('aria-expanded')) === 'true', 'Menu reports aria-expanded');
  const overflow = await pm.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  assert(!overflow, 'no horizontal scrolling at 390 px');
  await snap(pm, 'narrow-menu-open');
  ok('at 390 px the navigation folds behind a keyboard-operable Menu button, no horizontal scroll');
  await ctxM.close();
} catch (e) {
  failed++;
  console.log(`not ok ${passed + failed} - ${e.message}`);
  await snapAll(browser, snap);
} finally {
  await browser.close();
}
writeFileSync(join(out, 'results.txt'), log.join('\n') + '\n');
console.log(`${passed} passed, ${failed} failed (${((Date.now() - t0) / 1000).toFixed(1)}s, screenshots in ${out})`);
process.exit(failed === 0 ? 0 : 1);
