// Drives pkg/qix with the real enigma.js 2.15 client (and ws) against the fixture server
// started by tests/integration/test_qix_enigma.sh (QIX_PORT). Proves wire compatibility:
// OnConnected, Global methods, OpenDoc, a doc method, object proxies, named parameters,
// change notifications on responses and unsolicited, error codes, close arrays.
'use strict';
const assert = require('node:assert/strict');
const enigma = require('enigma.js');
const WebSocket = require('ws');
const schema = require('enigma.js/schemas/12.2027.0.json');

const port = process.env.QIX_PORT;
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

function once(emitter, event, ms = 3000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no '${event}' within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(t);
      resolve(args);
    });
  });
}

function connect(path, token) {
  return enigma.create({
    schema,
    url: `ws://127.0.0.1:${port}${path}`,
    createSocket: (url) => new WebSocket(url, token ? { headers: { Authorization: `Bearer ${token}` } } : {}),
  });
}

async function main() {
  const session = connect('/app/demo', 'carol');
  const notes = [];
  session.on('notification:*', (name, params) => notes.push([name, params]));
  const global = await session.open();
  let doc;
  let obj;

  await check('OnConnected notification', async () => {
    for (let i = 0; i < 50 && notes.length === 0; i += 1) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(notes[0], ['OnConnected', { qSessionState: 'SESSION_CREATED' }]);
  });
  await check('EngineVersion', async () => {
    const v = await global.engineVersion();
    assert.equal(v.qComponentVersion, '12.2027.0');
  });
  await check('GetAuthenticatedUser names the bearer', async () => {
    assert.equal(await global.getAuthenticatedUser(), 'UserDirectory=TESSERA; UserId=carol');
  });
  await check('IsDesktopMode and GetDocList', async () => {
    assert.equal(await global.isDesktopMode(), false);
    const list = await global.getDocList();
    assert.equal(list[0].qDocName, 'demo');
  });
  await check('OpenDoc gives a Doc proxy', async () => {
    doc = await global.openDoc('demo');
    assert.equal(doc.type, 'Doc');
    assert.equal(doc.id, 'demo');
    assert.equal(doc.handle, 1);
  });
  await check('GetActiveDoc returns the same doc', async () => {
    const d = await global.getActiveDoc();
    assert.equal(d.handle, 1);
  });
  await check('GetAppLayout', async () => {
    const layout = await doc.getAppLayout();
    assert.equal(layout.qTitle, 'demo');
    assert.deepEqual(layout.qStateNames, []);
  });
  await check('CreateSessionObject and GetLayout echo properties', async () => {
    obj = await doc.createSessionObject({ qInfo: { qType: 'kpi' }, title: 'hello' });
    assert.equal(obj.genericType, 'kpi');
    assert.ok(obj.handle > 1);
    const layout = await obj.getLayout();
    assert.equal(layout.title, 'hello');
    assert.equal(layout.qInfo.qId, obj.id);
  });
  await check('named parameters through the facade', async () => {
    const r = await doc.clearAll({ qLockedAlso: true, qStateName: 'B' });
    assert.deepEqual(r, { locked: true, state: 'B' });
  });
  await check('change array on a response emits changed', async () => {
    const changed = once(obj, 'changed');
    await obj.setProperties({ qInfo: { qType: 'kpi' }, title: 'bye' });
    await changed;
    assert.equal((await obj.getLayout()).title, 'bye');
  });
  await check('unsolicited change notification emits changed', async () => {
    const objChanged = once(obj, 'changed');
    const docChanged = once(doc, 'changed');
    assert.equal(await doc.doReload(), true);
    await Promise.all([objChanged, docChanged]);
  });
  await check('GetObject on a missing id rejects with code 2 Object not found', async () => {
    await assert.rejects(doc.getObject('FieldList'), (e) => e.code === 2 && e.message === 'Object not found');
  });
  await check('DestroySessionObject closes the proxy', async () => {
    const closed = once(obj, 'closed');
    const ok = await doc.destroySessionObject(obj.id);
    assert.equal(ok, true);
    await closed;
  });
  await check('OpenDoc of another app on this connection is refused', async () => {
    await assert.rejects(global.openDoc('other'), (e) => e.code === 5);
  });
  await session.close();

  await check('unknown app closes with 4204', async () => {
    const s = connect('/app/missing', 'carol');
    const closed = once(s, 'closed');
    await s.open().catch(() => {});
    const [evt] = await closed;
    assert.equal(evt.code, 4204);
  });
  await check('missing token is refused before the upgrade', async () => {
    const s = connect('/app/demo', null);
    await assert.rejects(s.open());
  });

  if (process.env.QIX_SERVER_PID) {
    await check('drain: SIGTERM closes with 4003 and enigma suspends (resumable)', async () => {
      const s = enigma.create({
        schema,
        url: `ws://127.0.0.1:${port}/app/demo`,
        suspendOnClose: true,
        createSocket: (url) => new WebSocket(url, { headers: { Authorization: 'Bearer carol' } }),
      });
      const g = await s.open();
      await g.openDoc('demo');
      const suspended = once(s, 'suspended', 5000);
      process.kill(Number(process.env.QIX_SERVER_PID), 'SIGTERM');
      const [evt] = await suspended;
      assert.equal(evt.initiator, 'network');
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
