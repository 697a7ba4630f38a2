// Open one app over the engine's QIX WebSocket with plain `ws` and say what happened, for
// tests/integration/test_access_events.sh. Env: WS (ws://127.0.0.1:<nginx port>/app/<appId>),
// KEY (API key), APP_ID. Prints one line: "opened" when OpenDoc returned a document handle,
// "error <code>" for an OpenDoc error, "closed <code>" when the engine closed the socket first
// (4204 no such app, 4203 no access); exit 0 in every one of these cases, 1 on a timeout.
'use strict';
const WebSocket = require('ws');

const ws = new WebSocket(process.env.WS, { headers: { Authorization: `Bearer ${process.env.KEY}` } });
let done = false;
function finish(line) {
  if (done) return;
  done = true;
  console.log(line);
  try { ws.close(); } catch { /* already closed */ }
  setTimeout(() => process.exit(0), 50);
}
const timer = setTimeout(() => { console.log('timeout'); process.exit(1); }, 15000);
timer.unref();
ws.on('open', () => {
  ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'OpenDoc', handle: -1,
    params: [process.env.APP_ID] }));
});
ws.on('message', (data) => {
  let m;
  try { m = JSON.parse(data.toString()); } catch { return; }
  if (m.id !== 1) return;
  if (m.error) finish(`error ${m.error.code}`);
  else if (m.result && m.result.qReturn) finish('opened');
});
ws.on('close', (code) => finish(`closed ${code}`));
ws.on('unexpected-response', (req, res) => finish(`http ${res.statusCode}`));
ws.on('error', (e) => finish(`closed error ${e.message}`));
