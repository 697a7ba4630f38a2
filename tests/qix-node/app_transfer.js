// App import/export round trip with the real enigma.js 2.15 (tests/integration/test_app_transfer.sh):
//   MODE=script   open APP_A, SetScript reading lib://DataFiles/sales.csv, create a persistent
//                 sheet "transfer-sheet", DoSave.
//   MODE=compare  open APP_A and APP_B in two sessions and check they hold the same script,
//                 tables (names, rows, fields), Sum(Amount) and the sheet. Prints one JSON line.
// Env: BASE (http://127.0.0.1:<nginx port>), KEY, APP_A, APP_B. Exit 1 on failure.
'use strict';
const assert = require('node:assert/strict');
const enigma = require('enigma.js');
const WebSocket = require('ws');
const schema = require('enigma.js/schemas/12.2027.0.json');

const base = process.env.BASE;
const key = process.env.KEY;
const mode = process.env.MODE || 'compare';

const SCRIPT = `Sales: LOAD * FROM [lib://DataFiles/sales.csv] (txt, utf8, embedded labels, delimiter is ',');
`;

function open(appId) {
  const session = enigma.create({
    schema,
    url: `${base.replace(/^http/, 'ws')}/app/${appId}`,
    createSocket: (url) => new WebSocket(url, { headers: { Authorization: `Bearer ${key}` } }),
  });
  return session.open().then(async (global) => ({ session, doc: await global.openDoc(appId) }));
}

async function describe(appId) {
  const { session, doc } = await open(appId);
  try {
    const script = await doc.getScript();
    const { qtr } = await doc.getTablesAndKeys({ qcx: 1000, qcy: 1000 }, { qcx: 0, qcy: 0 }, 30, true, false);
    const tables = qtr.map((t) => ({ name: t.qName, rows: t.qNoOfRows, fields: t.qFields.map((f) => f.qName) }));
    const sum = await doc.evaluate('=Sum(Amount)');
    const sheet = await doc.getObject('transfer-sheet');
    const props = await sheet.getProperties();
    return { script, tables, sum, sheetTitle: props.qMetaDef && props.qMetaDef.title };
  } finally {
    await session.close();
  }
}

(async () => {
  if (mode === 'script') {
    const { session, doc } = await open(process.env.APP_A);
    await doc.setScript(SCRIPT);
    await doc.createObject({ qInfo: { qId: 'transfer-sheet', qType: 'sheet' }, qMetaDef: { title: 'Transfer sheet' } });
    await doc.doSave();
    await session.close();
    console.log(JSON.stringify({ ok: true }));
    return;
  }
  const a = await describe(process.env.APP_A);
  const b = await describe(process.env.APP_B);
  assert.deepEqual(b, a);
  assert.equal(a.script, SCRIPT);
  assert.equal(a.sheetTitle, 'Transfer sheet');
  assert.ok(a.tables.length >= 1 && a.tables[0].rows > 0, `no data: ${JSON.stringify(a)}`);
  console.log(JSON.stringify({ a, b }));
})().catch((e) => {
  console.error(`app_transfer.js ${mode}: ${e.stack || e.message || e}`);
  process.exit(1);
});
