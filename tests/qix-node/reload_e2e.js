// REST reloads end to end with the real enigma.js 2.15 (tests/integration/test_reload_e2e.sh):
//   MODE=first  open the app, SetScript reading lib://DataFiles/sales.csv (uploaded through
//               spaces), DoSave, then POST /api/v1/reloads with the API key, poll it to
//               SUCCEEDED, read its log, and see the open session's hypercube pushed a change
//               and showing the file's data.
//   MODE=watch  open the app, check the cube shows EXPECT_BEFORE, print "ready", then wait
//               (WAIT_MS) for a pushed change after a reload someone else queues and check
//               EXPECT_AFTER.
// Env: BASE (http://127.0.0.1:<nginx port>), KEY, APP_ID, EXPECT (grand total after the
// reload), EXPECT_BEFORE / EXPECT_AFTER (watch mode). Prints one JSON line; exit 1 on failure.
'use strict';
const assert = require('node:assert/strict');
const enigma = require('enigma.js');
const WebSocket = require('ws');
const http = require('node:http');
const schema = require('enigma.js/schemas/12.2027.0.json');

const base = process.env.BASE;
const key = process.env.KEY;
const appId = process.env.APP_ID;
const mode = process.env.MODE || 'first';

const SCRIPT = `Sales: LOAD * FROM [lib://DataFiles/sales.csv] (txt, utf8, embedded labels, delimiter is ',');
`;

const CUBE = {
  qInfo: { qType: 'table' },
  qHyperCubeDef: {
    qDimensions: [{ qDef: { qFieldDefs: ['Country'] } }],
    qMeasures: [{ qDef: { qDef: '=Sum(Amount)' } }],
    qInitialDataFetch: [{ qWidth: 2, qHeight: 100 }],
  },
};

function request(method, path, body) {
  const u = new URL(base + path);
  const data = body === undefined ? undefined : JSON.stringify(body);
  const headers = { Authorization: `Bearer ${key}` };
  if (data !== undefined) headers['Content-Type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = http.request(u, { method, headers }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, text, json });
      });
    });
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

function once(emitter, event, ms) {
  const p = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no '${event}' within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(t);
      resolve(args);
    });
  });
  p.catch(() => {});
  return p;
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

async function total(cube) {
  const hc = (await cube.getLayout()).qHyperCube;
  return hc.qGrandTotalRow && hc.qGrandTotalRow[0] ? hc.qGrandTotalRow[0].qText : null;
}

async function open() {
  const session = enigma.create({
    schema,
    url: `${base.replace(/^http/, 'ws')}/app/${appId}`,
    createSocket: (url) => new WebSocket(url, { headers: { Authorization: `Bearer ${key}` } }),
  });
  const global = await session.open();
  const doc = await global.openDoc(appId);
  return { session, doc };
}

async function first() {
  const { session, doc } = await open();
  await doc.setScript(SCRIPT);
  await doc.doSave();
  assert.equal(await doc.getScript(), SCRIPT);
  const cube = await doc.createSessionObject(CUBE);
  const before = await total(cube);
  const pushed = once(cube, 'changed', 60000);
  const t0 = Date.now();
  const q = await request('POST', '/api/v1/reloads', { appId, partial: false });
  assert.equal(q.status, 201, q.text);
  assert.equal(q.json.status, 'QUEUED');
  let r = q.json;
  for (let i = 0; i < 600 && ['QUEUED', 'RELOADING'].includes(r.status); i++) {
    await sleep(100);
    const g = await request('GET', `/api/v1/reloads/${q.json.id}`);
    assert.equal(g.status, 200, g.text);
    r = g.json;
  }
  const reloadMs = Date.now() - t0;
  assert.equal(r.status, 'SUCCEEDED', JSON.stringify(r));
  const log = await request('GET', `/api/v1/apps/${appId}/reloads/logs/${q.json.id}`);
  assert.equal(log.status, 200, log.text);
  assert.match(log.text, /data file sales\.csv: from spaces/);
  await pushed;
  const pushMs = Date.now() - t0;
  const after = await total(cube);
  assert.equal(after, process.env.EXPECT);
  const layout = await doc.getAppLayout();
  assert.equal(layout.qHasData, true);
  await session.close();
  return { reloadId: q.json.id, status: r.status, attempts: r.attempts, before, after, reloadMs, pushMs };
}

async function watch() {
  const { session, doc } = await open();
  const cube = await doc.createSessionObject(CUBE);
  assert.equal(await total(cube), process.env.EXPECT_BEFORE);
  const pushed = once(cube, 'changed', Number(process.env.WAIT_MS || 120000));
  console.log('ready');
  await pushed;
  const after = await total(cube);
  assert.equal(after, process.env.EXPECT_AFTER);
  await session.close();
  return { before: process.env.EXPECT_BEFORE, after };
}

(mode === 'watch' ? watch() : first()).then(
  (out) => {
    console.log(JSON.stringify(out));
    process.exit(0);
  },
  (e) => {
    console.log(`FAIL ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  },
);
