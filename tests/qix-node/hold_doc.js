// Open one app with enigma.js (through nginx) and keep the session open until the engine closes
// it, for tests/integration/test_access_events.sh. Env: WS (ws://127.0.0.1:<nginx port>/app/
// <appId>), KEY (API key), APP_ID, WAIT_MS (how long to wait for the close; default 20000).
// Prints "opened" once OpenDoc returned a document, then "closed <code> <ms>" when the session
// closed (<ms>: since the close was awaited), or "error <message>" / "timeout"; exit 0 when it
// closed, 1 otherwise.
'use strict';
const WebSocket = require('ws');
const enigma = require('enigma.js');
const schema = require('enigma.js/schemas/12.2027.0.json');

const session = enigma.create({
  schema,
  url: process.env.WS,
  createSocket: (url) => new WebSocket(url, { headers: { Authorization: `Bearer ${process.env.KEY}` } }),
});
const wait = Number(process.env.WAIT_MS || 20000);
let t0 = 0;
session.on('closed', (evt) => {
  console.log(`closed ${evt && evt.code} ${t0 ? Date.now() - t0 : -1}`);
  process.exit(0);
});
(async () => {
  const global = await session.open();
  const doc = await global.openDoc(process.env.APP_ID);
  await doc.getAppLayout();
  t0 = Date.now();
  console.log('opened');
  setTimeout(() => { console.log('timeout'); process.exit(1); }, wait);
})().catch((e) => {
  console.log(`error ${e && e.message ? e.message : e}`);
  process.exit(1);
});
