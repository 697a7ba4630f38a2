// Drives the engine service (cmd/engine + pkg/engined) with the real enigma.js 2.15 client
// through nginx on a local stack (tests/integration/test_engine_enigma.sh): API key auth,
// OpenDoc, SetScript with INLINE data, DoReload, a hypercube session object, a selection
// and the changed layouts (in the response's change array and pushed to the other session
// after a reload), a bookmark applied after the selection changed, script and session
// variables with $(v) expansion, tenant isolation (another tenant's key gets close 4204 / error 1003, even
// when it sends X-Tsr-* headers itself) and, last, SIGTERM of the engine replicas: close 4003.
'use strict';
const assert = require('node:assert/strict');
const enigma = require('enigma.js');
const WebSocket = require('ws');
const http = require('node:http');
const schema = require('enigma.js/schemas/12.2027.0.json');

const base = process.env.ENGINE_WS; // ws://127.0.0.1:<nginx port>
const keyA = process.env.KEY_A;
const keyB = process.env.KEY_B;
const hostB = process.env.HOST_B;
const tenantA = process.env.TENANT_A;
const appId = process.env.APP_ID;
let passed = 0;
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

function once(emitter, event, ms = 5000) {
  const p = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no '${event}' within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(t);
      resolve(args);
    });
  });
  // A check that fails before awaiting it must not leave an unhandled rejection behind.
  p.catch(() => {});
  return p;
}

function get(path, key, host) {
  const u = new URL(base.replace(/^ws/, 'http') + path);
  const headers = { Authorization: `Bearer ${key}` };
  if (host) headers.Host = host;
  return new Promise((resolve, reject) => {
    const req = http.get(u, { headers }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
  });
}

function connect(path, { key, host, headers = {}, suspendOnClose = false } = {}) {
  const h = { ...headers };
  if (key) h.Authorization = `Bearer ${key}`;
  if (host) h.Host = host;
  return enigma.create({
    schema,
    url: `${base}${path}`,
    suspendOnClose,
    createSocket: (url) => new WebSocket(url, { headers: h }),
  });
}

const SCRIPT = `Sales: LOAD * INLINE [
Country, Product, Amount
Sweden, A, 10
Sweden, B, 7
Norway, A, 20
Denmark, B, 5
];
`;

const CUBE = {
  qInfo: { qType: 'barchart' },
  visualization: 'barchart',
  qHyperCubeDef: {
    qDimensions: [{ qDef: { qFieldDefs: ['Country'], cId: 'd1', qSortCriterias: [{ qSortByLoadOrder: 1, qSortByNumeric: 1, qSortByAscii: 1 }] } }],
    qMeasures: [{ qDef: { qDef: '=Sum(Amount)', cId: 'm1' }, qSortBy: { qSortByLoadOrder: 1, qSortByNumeric: -1 } }],
    qInterColumnSortOrder: [1, 0],
    qInitialDataFetch: [{ qWidth: 17, qHeight: 500 }],
    qSuppressMissing: true,
  },
};

const LISTBOX = {
  qInfo: { qType: 'njsListbox' },
  qListObjectDef: {
    qStateName: '$',
    qShowAlternatives: true,
    qDef: { qFieldDefs: ['Country'], qSortCriterias: [{ qSortByState: 1, qSortByAscii: 1 }] },
    qInitialDataFetch: [{ qTop: 0, qLeft: 0, qWidth: 1, qHeight: 100 }],
  },
};

const rows = (cube) => cube.qDataPages[0].qMatrix.map((r) => r.map((c) => c.qText));
const states = (lo) => Object.fromEntries(lo.qDataPages[0].qMatrix.map(([c]) => [c.qText, c.qState]));

async function main() {
  const session = connect(`/app/${appId}`, { key: keyA });
  const global = await session.open();
  let doc;
  let cube;
  let lb;

  await check('OpenDoc through nginx with the API key', async () => {
    doc = await global.openDoc(appId);
    assert.equal(doc.type, 'Doc');
    assert.equal(doc.id, appId);
    assert.match(await global.getAuthenticatedUser(), new RegExp(`UserId=${tenantA}/`));
  });
  await check('SetScript with INLINE data, DoReload, GetTablesAndKeys', async () => {
    await doc.setScript(SCRIPT);
    assert.equal(await doc.getScript(), SCRIPT);
    assert.equal(await doc.doReload(), true);
    const layout = await doc.getAppLayout();
    assert.equal(layout.qHasData, true);
    assert.ok(layout.qLocaleInfo);
    const { qtr } = await doc.getTablesAndKeys({ qcx: 1000, qcy: 1000 }, { qcx: 0, qcy: 0 }, 30, true, false);
    assert.equal(qtr[0].qName, 'Sales');
    assert.equal(qtr[0].qNoOfRows, 4);
  });
  await check('hypercube session object: layout sorted by Sum(Amount) desc', async () => {
    cube = await doc.createSessionObject(CUBE);
    assert.equal(cube.genericType, 'barchart');
    const layout = await cube.getLayout();
    const hc = layout.qHyperCube;
    assert.deepEqual(rows(hc), [['Norway', '20'], ['Sweden', '17'], ['Denmark', '5']]);
    assert.equal(hc.qGrandTotalRow[0].qText, '42');
    assert.equal(hc.qDimensionInfo[0].cId, 'd1');
    assert.deepEqual(hc.qDataPages[0].qArea, { qLeft: 0, qTop: 0, qWidth: 2, qHeight: 3 });
    assert.equal(hc.qDataPages[0].qMatrix[0][0].qNum, 'NaN');
  });
  await check('selection: change notifications and changed layouts', async () => {
    lb = await doc.createSessionObject(LISTBOX);
    assert.equal(states((await lb.getLayout()).qListObject).Norway, 'O');
    const changedLb = once(lb, 'changed');
    const changedCube = once(cube, 'changed');
    await cube.beginSelections(['/qHyperCubeDef']);
    const norway = (await cube.getLayout()).qHyperCube.qDataPages[0].qMatrix[0][0].qElemNumber;
    assert.equal(await cube.selectHyperCubeValues('/qHyperCubeDef', 0, [norway], false), true);
    await Promise.all([changedLb, changedCube]);
    const cl = await cube.getLayout();
    assert.deepEqual(rows(cl.qHyperCube), [['Norway', '20']]);
    assert.equal(cl.qHyperCube.qDataPages[0].qMatrix[0][0].qState, 'S');
    assert.equal(cl.qSelectionInfo.qInSelections, true);
    assert.deepEqual(states((await lb.getLayout()).qListObject), { Norway: 'S', Denmark: 'A', Sweden: 'A' });
    assert.equal(await doc.evaluate('=Sum(Amount)'), '20');
    assert.equal((await doc.evaluateEx('Sum(Amount)')).qNumber, 20);
    await cube.endSelections(true);
    assert.deepEqual((await cube.getLayout()).qSelectionInfo, {});
  });
  await check('Field API: select, cardinal, clear', async () => {
    const f = await doc.getField('Country');
    assert.equal(await f.getCardinal(), 3);
    assert.equal(await f.select('Sweden'), true);
    assert.deepEqual(rows((await cube.getLayout()).qHyperCube), [['Sweden', '17']]);
    await doc.clearAll();
    assert.equal(rows((await cube.getLayout()).qHyperCube).length, 3);
  });
  await check('another session of the tenant is pushed a change after a reload', async () => {
    const s2 = connect(`/app/${appId}`, { key: keyA });
    const g2 = await s2.open();
    const d2 = await g2.openDoc(appId);
    assert.equal(await d2.getScript(), SCRIPT);
    const c2 = await d2.createSessionObject(CUBE);
    assert.equal(rows((await c2.getLayout()).qHyperCube).length, 3);
    const pushed = once(c2, 'changed');
    await doc.setScript(`${SCRIPT}Extra: LOAD * INLINE [\nCountry, Capital\nNorway, Oslo\n];\n`);
    assert.equal(await doc.doReload(), true);
    await pushed;
    const f = await d2.getField('Capital');
    assert.equal(await f.getCardinal(), 1);
    await s2.close();
  });
  await check('bookmark: create, change selections, apply brings them back', async () => {
    await doc.setScript(`SET vTarget = Norway;\n${SCRIPT}`);
    assert.equal(await doc.doReload(), true);
    const f = await doc.getField('Country');
    assert.equal(await f.select('Norway'), true);
    const bm = await doc.createBookmark({ qInfo: { qType: 'bookmark' }, qMetaDef: { title: 'Norway' } });
    assert.equal(bm.type, 'GenericBookmark');
    const bl = await bm.getLayout();
    assert.equal(bl.qMeta.title, 'Norway');
    assert.equal(bl.qBookmark.qStateData[0].qFieldItems[0].qValues[0].qText, 'Norway');
    await doc.clearAll();
    assert.equal(await f.select('Sweden'), true);
    assert.equal(states((await lb.getLayout()).qListObject).Sweden, 'S');
    const changed = once(lb, 'changed');
    assert.equal(await doc.applyBookmark(bm.id), true);
    await changed;
    assert.deepEqual(states((await lb.getLayout()).qListObject), { Norway: 'S', Denmark: 'A', Sweden: 'A' });
    const list = await doc.getBookmarks({ qTypes: ['bookmark'], qData: { title: '/qMetaDef/title' } });
    assert.ok(list.find((b) => b.qInfo.qId === bm.id && b.qData.title === 'Norway'));
    await assert.rejects(doc.applyBookmark('no-such-bookmark'), (e) => e.code === 2);
    assert.equal(await doc.destroyBookmark(bm.id), true);
    await assert.rejects(doc.getBookmark(bm.id), (e) => e.code === 2);
  });
  await check('variables: a script variable, a session variable and $(v) expansion', async () => {
    const v = await doc.getVariableByName('vTarget');
    assert.equal(v.type, 'GenericVariable');
    const vl = await v.getLayout();
    assert.equal(vl.qText, 'Norway');
    assert.equal(vl.qIsScriptCreated, true);
    const sv = await doc.createSessionVariable({ qName: 'vSales', qDefinition: '=Sum(Amount)' });
    assert.equal((await sv.getLayout()).qNum, 20); /* Norway is selected */
    assert.equal(await doc.evaluate('=Sum(Amount) + $(vSales)'), '40');
    assert.equal(await doc.evaluate("=Count({<Country={'$(vTarget)'}>} Country)"), '1');
    await sv.setStringValue('5');
    assert.equal((await sv.getLayout()).qNum, 5);
    const byId = await doc.getVariableById(sv.id);
    assert.equal(byId.handle, sv.handle);
    assert.equal(await doc.destroySessionVariableByName('vSales'), true);
    await assert.rejects(doc.getVariableByName('vSales'), (e) => e.code === 2);
    await doc.clearAll();
  });
  await check('alternate state: its own selections beside the default state', async () => {
    await doc.addAlternateState('B');
    assert.deepEqual((await doc.getAppLayout()).qStateNames, ['B']);
    const lbB = await doc.createSessionObject({ ...LISTBOX, qListObjectDef: { ...LISTBOX.qListObjectDef, qStateName: 'B' } });
    const fB = await doc.getField('Country', 'B');
    assert.equal(await fB.select('Denmark'), true);
    assert.equal(states((await lbB.getLayout()).qListObject).Denmark, 'S');
    assert.equal(states((await lb.getLayout()).qListObject).Denmark, 'O');
    await doc.removeAlternateState('B');
    assert.deepEqual((await doc.getAppLayout()).qStateNames, []);
  });
  await session.close();

  await check("another tenant's key: the app closes 4204 (app not found)", async () => {
    const s = connect(`/app/${appId}`, { key: keyB, host: hostB });
    const closed = once(s, 'closed');
    await s.open().catch(() => {});
    const [evt] = await closed;
    assert.equal(evt.code, 4204);
  });
  await check('another tenant sending X-Tsr-* itself is still refused', async () => {
    const s = connect(`/app/${appId}`, {
      key: keyB,
      host: hostB,
      headers: { 'X-Tsr-Tenant-Id': tenantA, 'X-Tsr-User-Id': 'admin' },
    });
    const closed = once(s, 'closed');
    await s.open().catch(() => {});
    const [evt] = await closed;
    assert.equal(evt.code, 4204);
  });
  await check("another tenant's OpenDoc on engineData: 1003 App not found", async () => {
    const s = connect('/app/engineData', { key: keyB, host: hostB });
    const g = await s.open();
    await assert.rejects(g.openDoc(appId), (e) => e.code === 1003);
    const list = await g.getDocList();
    assert.equal(list.filter((d) => d.qDocId === appId).length, 0);
    await s.close();
  });
  await check('no credential: refused before the upgrade', async () => {
    const s = connect(`/app/${appId}`, {});
    await assert.rejects(s.open());
  });

  await check('GET /api/v1/apps/{id}/data/metadata: tables and fields; 404 for the other tenant', async () => {
    const a = await get(`/api/v1/apps/${appId}/data/metadata`, keyA);
    assert.equal(a.status, 200, a.body);
    const md = JSON.parse(a.body);
    const sales = md.tables.find((t) => t.name === 'Sales');
    assert.equal(sales.no_of_rows, 4);
    assert.ok(md.fields.find((f) => f.name === 'Country' && f.cardinal === 3));
    const b = await get(`/api/v1/apps/${appId}/data/metadata`, keyB, hostB);
    assert.equal(b.status, 404, b.body);
  });

  if (process.env.ENGINE_PIDS) {
    await check('SIGTERM of the engine: close 4003, enigma suspends (resumable)', async () => {
      const s = connect(`/app/${appId}`, { key: keyA, suspendOnClose: true });
      const g = await s.open();
      await g.openDoc(appId);
      const suspended = once(s, 'suspended', 10000);
      for (const pid of process.env.ENGINE_PIDS.split(' ')) process.kill(Number(pid), 'SIGTERM');
      const [evt] = await suspended;
      assert.equal(evt.code, 4003);
    });
  }

  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(`FAIL setup: ${e && e.stack ? e.stack : e}`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
