// bench/qix: selection round trips on the engine service through nginx with enigma.js
// (tests/qix-node's enigma.js 2.15). node qix.js SESSIONS ITERATIONS — SESSIONS concurrent
// sessions on the Sales app (ENGINE_WS, KEY, APP_ID), each with 4 session objects (Sales by
// Region, Sales by Category, list objects Country and YearMonth); one round trip = select one
// Country (Field.SelectValues) + GetLayout of the 4 objects (pipelined, as a client does).
// Prints one JSON line: sessions, samples, p50/p99/mean ms, wall ms, and the session opens'
// p50/p99 ms and retries.
'use strict';
const path = require('node:path');
const { createRequire } = require('node:module');
const req = createRequire(path.join(__dirname, '../../tests/qix-node/package.json'));
const enigma = req('enigma.js');
const WebSocket = req('ws');
const schema = req('enigma.js/schemas/12.2027.0.json');

const [sessionsArg, itersArg] = process.argv.slice(2);
const sessions = Number(sessionsArg || 1);
const iters = Number(itersArg || 50);
const warm = 3;
const { ENGINE_WS: base, KEY: key, APP_ID: appId } = process.env;

const SALES = '=Sum(Quantity*UnitPrice)';
const ASC = [{ qSortByAscii: 1, qSortByNumeric: 1 }];
const cube = (f) => ({
  qInfo: { qType: 'bench-cube' },
  qHyperCubeDef: {
    qDimensions: [{ qDef: { qFieldDefs: [f], qSortCriterias: ASC } }],
    qMeasures: [{ qDef: { qDef: SALES } }],
    qSuppressZero: true,
    qInitialDataFetch: [{ qTop: 0, qLeft: 0, qWidth: 2, qHeight: 100 }],
  },
});
const listbox = (f) => ({
  qInfo: { qType: 'bench-listbox' },
  qListObjectDef: {
    qShowAlternatives: true,
    qDef: { qFieldDefs: [f], qSortCriterias: [{ qSortByState: 1, qSortByAscii: 1 }] },
    qInitialDataFetch: [{ qTop: 0, qLeft: 0, qWidth: 1, qHeight: 100 }],
  },
});

async function openSession() {
  const session = enigma.create({
    schema,
    url: `${base}/app/${appId}`,
    createSocket: (url) => new WebSocket(url, { headers: { Authorization: `Bearer ${key}` } }),
  });
  const global = await session.open();
  const doc = await global.openDoc(appId);
  const objs = [];
  for (const d of [cube('Region'), cube('Category'), listbox('Country'), listbox('YearMonth')]) {
    objs.push(await doc.createSessionObject(d));
  }
  const field = await doc.getField('Country');
  return { session, doc, objs, field };
}

async function roundTrip(s, k) {
  const t0 = process.hrtime.bigint();
  const c = `Country ${String(k % 50).padStart(2, '0')}`;
  const ok = await s.field.selectValues([{ qText: c }], false, false);
  const layouts = await within(Promise.all(s.objs.map((o) => o.getLayout())), 60000, 'layouts');
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!ok || layouts[0].qHyperCube.qDataPages[0].qMatrix.length === 0) throw new Error(`round trip ${c}`);
  return ms;
}

const pct = (a, p) => a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))];

// A step that does not finish in ms fails the run (an open that hangs is a bug, not a sample).
function within(p, ms, what) {
  let t;
  const timer = new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms); });
  return Promise.race([p, timer]).finally(() => clearTimeout(t));
}

async function main() {
  const all = [];
  const openMs = [];
  let retries = 0;
  // Every session opens at once (QIX_BENCH_OPEN_BATCH: fewer at a time): the engine's access
  // checks to spaces for one principal and app are cached and coalesced, so a crowd costs one
  // check. An open refused (close 1013 when spaces is busy) is retried after a pause; one that
  // hangs fails the run.
  const batch = Number(process.env.QIX_BENCH_OPEN_BATCH || sessions);
  const open = async () => {
    for (let t = 0; ; t++) {
      const t0 = Date.now();
      try {
        const s = await within(openSession(), 30000, 'session open');
        openMs.push(Date.now() - t0);
        return s;
      } catch (e) {
        if (t >= 5) throw e;
        retries += 1;
        await new Promise((r) => setTimeout(r, 200 * (t + 1)));
      }
    }
  };
  for (let i = 0; i < sessions; i += batch) {
    const n = Math.min(batch, sessions - i);
    all.push(...(await Promise.all(Array.from({ length: n }, open))));
  }
  openMs.sort((a, b) => a - b);
  for (let w = 0; w < warm; w++) await Promise.all(all.map((s, i) => roundTrip(s, i + w)));
  const samples = [];
  const t0 = Date.now();
  await Promise.all(all.map(async (s, i) => {
    for (let k = 0; k < iters; k++) samples.push(await roundTrip(s, i * 7 + k));
  }));
  const wall = Date.now() - t0;
  samples.sort((a, b) => a - b);
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  console.log(JSON.stringify({ sessions, samples: samples.length, p50: pct(samples, 50),
    p99: pct(samples, 99), mean, wall, open_p50: pct(openMs, 50), open_p99: pct(openMs, 99),
    open_retries: retries }));
  await Promise.all(all.map((s) => s.session.close()));
}
main().catch((e) => { console.error(e && e.stack ? e.stack : e); process.exit(1); });
