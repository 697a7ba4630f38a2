// App export and import with Qlik's own client, @qlik/api (Node, API key auth), through nginx:
// apps.exportApp → 201 + Location, tempContents.downloadTempFile → the app file as a Blob,
// apps.importApp (octet-stream body) → a new app whose data model metadata equals the source's,
// and the error shape of a refused import. Run by tests/integration/test_app_transfer.sh with
// TSR_URL, TSR_API_KEY and APP_ID (an app with data).
import assert from "node:assert/strict";
import { createQlikApi } from "@qlik/api";

const url = process.env.TSR_URL;
const apiKey = process.env.TSR_API_KEY;
const appId = process.env.APP_ID;
assert.ok(url && apiKey && appId, "TSR_URL, TSR_API_KEY and APP_ID are required");

const api = createQlikApi({ hostConfig: { authType: "apikey", host: url, apiKey } });
const fresh = { noCache: true };
const ok = (msg) => console.log(`ok - ${msg}`);

const exp = await api.apps.exportApp(appId, {}, fresh);
assert.equal(exp.status, 201, `exportApp status ${exp.status}`);
const location = exp.headers.get("location");
assert.match(location ?? "", /^\/api\/v1\/temp-contents\/[0-9a-f]{32}$/, `Location: ${location}`);
const tempId = location.split("/").pop();
ok(`apps.exportApp → 201, Location ${location}`);

const dl = await api.tempContents.downloadTempFile(tempId, {}, fresh);
assert.equal(dl.status, 200);
const blob = dl.data;
assert.ok(blob instanceof Blob && blob.size > 0, `download: ${typeof blob}`);
ok(`tempContents.downloadTempFile → a ${blob.size}-byte Blob`);

const name = `qlik-api import ${Date.now()}`;
const imp = await api.apps.importApp({ name }, blob, fresh);
assert.equal(imp.status, 200, `importApp status ${imp.status}`);
const newId = imp.data.attributes.id;
assert.ok(newId && newId !== appId, `importApp: ${JSON.stringify(imp.data)}`);
assert.equal(imp.data.attributes.name, name);
ok(`apps.importApp → 200, app ${newId}`);

const rows = (md) => md.tables.map((t) => [t.name, t.no_of_rows, t.no_of_fields]);
const a = (await api.apps.getAppDataMetadata(appId, fresh)).data;
const b = (await api.apps.getAppDataMetadata(newId, fresh)).data;
assert.ok(a.tables.length > 0, "the source app has data");
assert.deepEqual(rows(b), rows(a));
ok(`the imported app's data model equals the source's: ${JSON.stringify(rows(b))}`);

try {
  await api.apps.importApp({ name: "broken" }, new Blob([new Uint8Array(Math.floor(blob.size / 2))]), fresh);
  assert.fail("a broken file was imported");
} catch (e) {
  assert.equal(e.status, 400, `broken import: status ${e.status}`);
  assert.equal(e.data?.errors?.[0]?.code, "HTTP-400", JSON.stringify(e.data));
}
ok("apps.importApp of a broken file → InvokeFetchError 400 with the error body");
await api.apps.deleteApp(newId);
ok("@qlik/api app transfer");
