// The Sales model (../shared/bench/SALES_MODEL.md, 1.6M rows) on the engine service through
// nginx with the real enigma.js (tests/integration/test_engine_sales.sh): SetScript with the
// model's load script, DoReload, then Q1–Q7 as hypercubes and list objects with the
// selections the queries require; numbers and states must equal the reference answers.
'use strict';
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const enigma = require('enigma.js');
const WebSocket = require('ws');
const schema = require('enigma.js/schemas/12.2027.0.json');

const base = process.env.ENGINE_WS;
const key = process.env.KEY;
const appId = process.env.APP_ID;
const ROWS = 1600000;

const SCRIPT = ['Customers', 'Products', 'Calendar', 'Sales'].map((t) =>
  `${t}: LOAD * FROM [lib://DataFiles/${t}.csv]\n  (txt, utf8, embedded labels, delimiter is ',');\n`).join('');

const REF = {
  q1: [1077635925.38, 675449170.61, 566947664.52, 516859095.66, 491572268.48, 451911790.71, 444731937.88, 432695004.02],
  q2: [15508877.96, 12067047.92, 12034938.33, 10501311.92, 13584467.59, 10944656.25, 11865435.12, 15908585.90, 10431418.58, 10575520.46, 12636770.85, 13284233.28, 11060744.19, 13701523.34, 15239828.92, 12838467.63, 12374360.91, 12177041.61, 12188368.23, 11408887.03],
  q3: [48537, 48409, 48756, 48657, 48810],
  q4: [[1, 2431300.22], [4, 816564.40], [9, 589222.59], [6, 562671.20], [11, 516995.70], [13, 451388.36], [5, 405219.99], [18, 393223.38], [3, 325240.63], [20, 306812.94]],
  q5bX: ['00', '02', '03', '05', '07', '08', '10', '11', '13'],
  q7sum: 4657802857.26,
  q7md5: '37ff7582135a5108d3a57d60c5c0e2df',
};

let passed = 0;
let failed = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed += 1;
    console.log(`ok ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

function close(got, want, what) {
  const rel = Math.abs(got - want) / Math.max(1, Math.abs(want));
  assert.ok(rel <= 1e-9, `${what}: got ${got}, want ${want}`);
}

const SALES = '=Sum(Quantity*UnitPrice)';
const ASC = { qSortByAscii: 1, qSortByNumeric: 1 };
function cube(dims, measures, { height = 100, interSort } = {}) {
  return {
    qInfo: { qType: 'sales-cube' },
    qHyperCubeDef: {
      qDimensions: dims.map((f) => ({ qDef: { qFieldDefs: [f], qSortCriterias: [ASC] } })),
      qMeasures: measures.map((m) => ({ qDef: { qDef: m.def }, qSortBy: m.sort || {} })),
      qInterColumnSortOrder: interSort || [...Array(dims.length + measures.length).keys()],
      qSuppressZero: true,
      qSuppressMissing: true,
      qInitialDataFetch: [{ qTop: 0, qLeft: 0, qWidth: dims.length + measures.length, qHeight: height }],
    },
  };
}
function listbox(field) {
  return {
    qInfo: { qType: 'sales-listbox' },
    qListObjectDef: {
      qShowAlternatives: true,
      qDef: { qFieldDefs: [field], qSortCriterias: [{ qSortByAscii: 1 }] },
      qInitialDataFetch: [{ qTop: 0, qLeft: 0, qWidth: 1, qHeight: 200 }],
    },
  };
}
const matrix = (l) => l.qHyperCube.qDataPages[0].qMatrix;
const states = (l) => Object.fromEntries(l.qListObject.qDataPages[0].qMatrix.map(([c]) => [c.qText, c.qState]));

async function main() {
  const session = enigma.create({
    schema,
    url: `${base}/app/${appId}`,
    createSocket: (url) => new WebSocket(url, { headers: { Authorization: `Bearer ${key}` } }),
  });
  const global = await session.open();
  const doc = await global.openDoc(appId);

  async function select(field, values) {
    const f = await doc.getField(field);
    const v = values.map((x) => (typeof x === 'number' ? { qText: String(x), qIsNumeric: true, qNumber: x } : { qText: x }));
    assert.equal(await f.selectValues(v, false, false), true, `select ${field}`);
  }

  await check('SetScript (SALES_MODEL load script), DoReload 1.6M rows', async () => {
    await doc.setScript(SCRIPT);
    assert.equal(await doc.doReload(), true);
    const { qtr } = await doc.getTablesAndKeys({ qcx: 1000, qcy: 1000 }, { qcx: 0, qcy: 0 }, 30, true, false);
    const n = Object.fromEntries(qtr.map((t) => [t.qName, t.qNoOfRows]));
    assert.deepEqual(n, { Customers: 100000, Products: 5000, Calendar: 1827, Sales: ROWS });
    assert.equal((await doc.getAppLayout()).qHasData, true);
  });

  await check('Q1: Sales by Region, no selection', async () => {
    const o = await doc.createSessionObject(cube(['Region'], [{ def: SALES }]));
    const m = matrix(await o.getLayout());
    assert.deepEqual(m.map((r) => r[0].qText), [...Array(8).keys()].map((k) => `Region ${k}`));
    m.forEach((r, k) => close(r[1].qNum, REF.q1[k], `Region ${k}`));
    await doc.destroySessionObject(o.id);
  });

  await check('Q3: Count(DISTINCT CustomerID) by Year, no selection', async () => {
    const o = await doc.createSessionObject(cube(['Year'], [{ def: '=Count(DISTINCT CustomerID)' }]));
    const m = matrix(await o.getLayout());
    assert.deepEqual(m.map((r) => r[0].qText), ['2020', '2021', '2022', '2023', '2024']);
    assert.deepEqual(m.map((r) => r[1].qNum), REF.q3);
    await doc.destroySessionObject(o.id);
  });

  await check('Q7: YearMonth x Category, 1,200 cells, sum and md5', async () => {
    const o = await doc.createSessionObject(cube(['YearMonth', 'Category'], [{ def: SALES }], { height: 1500 }));
    const l = await o.getLayout();
    assert.equal(l.qHyperCube.qSize.qcy, 1200);
    const m = matrix(l);
    assert.equal(m.length, 1200);
    close(m.reduce((a, r) => a + r[2].qNum, 0), REF.q7sum, 'sum');
    const text = m.map((r) => `${r[0].qText},${r[1].qText},${r[2].qNum.toFixed(2)}`).join('\n');
    assert.equal(crypto.createHash('md5').update(text).digest('hex'), REF.q7md5);
    await doc.destroySessionObject(o.id);
  });

  await check('Q2: Sales by Category with Country in {03, 17}', async () => {
    await doc.clearAll(false);
    await select('Country', ['Country 03', 'Country 17']);
    const o = await doc.createSessionObject(cube(['Category'], [{ def: SALES }]));
    const m = matrix(await o.getLayout());
    assert.equal(m.length, 20);
    m.forEach((r, k) => {
      assert.equal(r[0].qText, `Category ${String(k).padStart(2, '0')}`);
      close(r[1].qNum, REF.q2[k], r[0].qText);
    });
    await doc.destroySessionObject(o.id);
  });

  await check('Q4: top 10 products, Region 2 and Year 2023', async () => {
    await doc.clearAll(false);
    await select('Region', ['Region 2']);
    await select('Year', [2023]);
    const def = cube(['ProductID', 'ProductName'], [{ def: SALES, sort: { qSortByNumeric: -1 } }],
      { height: 10, interSort: [2, 0, 1] });
    def.qHyperCubeDef.qMeasures[0].qSortBy = { qSortByNumeric: -1 };
    const o = await doc.createSessionObject(def);
    const m = matrix(await o.getLayout());
    assert.equal(m.length, 10);
    m.forEach((r, k) => {
      assert.equal(r[0].qNum, REF.q4[k][0], `row ${k} ProductID`);
      assert.equal(r[1].qText, `Product ${String(REF.q4[k][0]).padStart(4, '0')}`);
      close(r[2].qNum, REF.q4[k][1], `ProductID ${REF.q4[k][0]}`);
    });
    await doc.destroySessionObject(o.id);
  });

  await check('Q5: list object Country states with Category 07 selected (all O)', async () => {
    await doc.clearAll(false);
    const o = await doc.createSessionObject(listbox('Country'));
    await select('Category', ['Category 07']);
    const s = states(await o.getLayout());
    assert.equal(Object.keys(s).length, 50);
    assert.ok(Object.values(s).every((x) => x === 'O'), JSON.stringify(s));
    await doc.destroySessionObject(o.id);
  });

  await check('Q5b: list object Category states with CustomerID 50000 selected', async () => {
    await doc.clearAll(false);
    const o = await doc.createSessionObject(listbox('Category'));
    await select('CustomerID', [50000]);
    const s = states(await o.getLayout());
    const want = {};
    for (let k = 0; k < 20; k++) {
      const c = String(k).padStart(2, '0');
      want[`Category ${c}`] = REF.q5bX.includes(c) ? 'X' : 'O';
    }
    assert.deepEqual(s, want);
    await doc.destroySessionObject(o.id);
  });

  await check('Q6: list object YearMonth states incl. S/A', async () => {
    await doc.clearAll(false);
    const o = await doc.createSessionObject(listbox('YearMonth'));
    await select('Year', [2022]);
    await select('YearMonth', ['2022-03', '2022-04']);
    await select('Country', ['Country 03', 'Country 17']);
    const s = states(await o.getLayout());
    const want = {};
    for (let y = 2020; y <= 2024; y++) {
      for (let mo = 1; mo <= 12; mo++) {
        const ym = `${y}-${String(mo).padStart(2, '0')}`;
        want[ym] = y !== 2022 ? 'X' : (mo === 3 || mo === 4 ? 'S' : 'A');
      }
    }
    assert.deepEqual(s, want);
    await doc.destroySessionObject(o.id);
  });

  await session.close();
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.log(`FAIL: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
