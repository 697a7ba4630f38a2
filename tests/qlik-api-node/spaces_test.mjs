// The spaces service through nginx with Qlik's own client, @qlik/api (Node, API key auth):
// create a space, assign a user, create apps in it, list them through items (paging with the
// client's next()), upload / list / download a data file, delete everything, and check the
// error shapes the client sees. Run by tests/integration/test_spaces.sh with
// TSR_URL, TSR_API_KEY (the bootstrap admin's key), TSR_SPACES_DIRECT (the service itself,
// for the internal access decision), TSR_IDENTITY_DIRECT and TSR_PLATFORM_TOKEN (the stack's
// services' platform token, to get a service token for that call as the engine does).
import assert from "node:assert/strict";
import { createQlikApi } from "@qlik/api";

const url = process.env.TSR_URL;
const apiKey = process.env.TSR_API_KEY;
const direct = process.env.TSR_SPACES_DIRECT;
assert.ok(url && apiKey && direct, "TSR_URL, TSR_API_KEY and TSR_SPACES_DIRECT are required");

const api = createQlikApi({ hostConfig: { authType: "apikey", host: url, apiKey } });
const fresh = { noCache: true };
const ok = (msg) => console.log(`ok - ${msg}`);

async function expectStatus(promise, status, what) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.status, status, `${what}: status ${e.status}, want ${status}`);
    assert.ok(Array.isArray(e.data?.errors), `${what}: error body ${JSON.stringify(e.data)}`);
    assert.equal(e.data.errors[0].code, `HTTP-${status}`);
    return;
  }
  assert.fail(`${what}: succeeded, want ${status}`);
}

const me = (await api.users.getMyUser(fresh)).data;
assert.ok(me.id && me.tenantId, `users/me: ${JSON.stringify(me)}`);
const tenant = (await api.tenants.getMyTenant(fresh)).data;
assert.equal(tenant.id, me.tenantId, "tenants/me is the caller's tenant");
assert.ok(Array.isArray(tenant.hostnames), `tenants/me: ${JSON.stringify(tenant)}`);
ok("users/me and tenants/me with the API key");
const tag = `it-${Date.now()}`;

// A space and its uniqueness.
const created = await api.spaces.createSpace({ name: `Sales ${tag}`, type: "shared", description: "it" });
assert.equal(created.status, 201);
const space = created.data;
assert.equal(space.type, "shared");
assert.equal(space.ownerId, me.id);
assert.match(space.links.self.href, /^http:\/\//);
await expectStatus(api.spaces.createSpace({ name: `sales ${tag}`, type: "shared" }), 409, "duplicate space");
const listed = await api.spaces.getSpaces({ name: tag }, fresh);
assert.equal(listed.data.meta.count, 1);
assert.equal(listed.data.data[0].id, space.id);
ok("createSpace 201, duplicate 409, getSpaces with meta.count");

// Assign a user of the tenant (created through identity) as consumer.
const user = (await api.users.createUser({ email: `${tag}@example.test`, name: "IT User" })).data;
const asg = await api.spaces.createSpaceAssignment(space.id, { type: "user", assigneeId: user.id, roles: ["consumer"] });
assert.equal(asg.status, 201);
assert.deepEqual(asg.data.roles, ["consumer"]);
await expectStatus(
  api.spaces.createSpaceAssignment(space.id, { type: "user", assigneeId: user.id, roles: ["producer"] }),
  409,
  "second assignment",
);
await expectStatus(
  api.spaces.createSpaceAssignment(space.id, { type: "user", assigneeId: "x", roles: ["publisher"] }),
  400,
  "role not assignable in a shared space",
);
const asgs = await api.spaces.getSpaceAssignments(space.id, {}, fresh);
assert.ok(asgs.data.data.some((a) => a.assigneeId === user.id));
ok("createSpaceAssignment 201, 409 duplicate, 400 bad role, listed");

// Apps in the space: 200 with attributes.id, like Qlik.
const apps = [];
for (let i = 0; i < 3; i++) {
  const r = await api.apps.createApp({ attributes: { name: `App ${i} ${tag}`, spaceId: space.id } });
  assert.equal(r.status, 200);
  assert.match(r.data.attributes.id, /^[0-9a-f]{24}$/);
  assert.equal(r.data.attributes.spaceId, space.id);
  apps.push(r.data.attributes.id);
}
const got = await api.apps.getAppInfo(apps[0], fresh);
assert.equal(got.data.attributes.name, `App 0 ${tag}`);
ok("createApp 200 with attributes.id, getAppInfo");

// The consumer's access decision, asked directly of the service (as the engine does: with a
// service token naming the consumer; spaces believes only verified tokens).
const st = await fetch(`${process.env.TSR_IDENTITY_DIRECT}/internal/v1/service-tokens`, {
  method: "POST",
  headers: { Authorization: `Bearer ${process.env.TSR_PLATFORM_TOKEN}`, "Content-Type": "application/json" },
  body: JSON.stringify({ tenantId: space.tenantId, userId: user.id, roles: ["User"] }),
});
assert.equal(st.status, 200, "service token");
const forged = await fetch(`${direct}/internal/v1/access?resource=app:${apps[0]}`, {
  headers: { "X-Tsr-Tenant-Id": space.tenantId, "X-Tsr-User-Id": user.id, "X-Tsr-Roles": "TenantAdmin" },
});
assert.equal(forged.status, 401, "principal headers without a token");
const acc = await fetch(`${direct}/internal/v1/access?resource=app:${apps[0]}`, {
  headers: { "X-Tsr-Token": (await st.json()).token, "X-Tsr-Roles": "TenantAdmin" },
});
assert.equal(acc.status, 200);
assert.deepEqual((await acc.json()).actions, ["read", "export"]);
ok("access decision for the assigned consumer: read, export");

// Items: filter by type and space, page with the client's next() over absolute links.
let page = await api.items.getItems({ resourceType: "app", spaceId: space.id, limit: 2 }, fresh);
const seen = page.data.data.map((it) => it.resourceId);
assert.equal(seen.length, 2);
assert.ok(page.next, "a next page");
assert.match(page.data.links.next.href, /^http:\/\/.*\/api\/v1\/items\?/);
page = await page.next();
seen.push(...page.data.data.map((it) => it.resourceId));
assert.deepEqual([...seen].sort(), [...apps].sort());
assert.equal(page.next, undefined);
const byName = await api.items.getItems({ resourceType: "app", name: `App 1 ${tag}` }, fresh);
assert.equal(byName.data.data.length, 1);
assert.equal(byName.data.data[0].resourceAttributes.id, apps[1]);
ok("getItems by resourceType/spaceId/name, cursor paging with next()");

// A data file in the space's DataFiles connection.
const content = "Region,Sales\nNorth,10\nSouth,20\n";
const up = await api.dataFiles.uploadDataFile({
  File: new Blob([content], { type: "text/csv" }),
  Json: { name: `sales-${tag}.csv`, connectionId: space.id },
});
assert.equal(up.status, 201);
const file = up.data;
assert.equal(file.size, content.length);
const files = await api.dataFiles.getDataFiles({ connectionId: space.id }, fresh);
assert.ok(files.data.data.some((f) => f.id === file.id));
const dl = await fetch(`${url}/api/v1/data-files/${file.id}/content`, {
  headers: { Authorization: `Bearer ${apiKey}` },
});
assert.equal(dl.status, 200);
assert.equal(await dl.text(), content);
const fileItems = await api.items.getItems({ resourceType: "datafile", spaceId: space.id }, fresh);
assert.equal(fileItems.data.data.length, 1);
ok("uploadDataFile 201 (multipart), getDataFiles, download, listed in items");

// A space with content refuses deletion.
await expectStatus(api.spaces.deleteSpace(space.id), 412, "delete a space with content");

// Delete everything.
assert.equal((await api.dataFiles.deleteDataFile(file.id)).status, 204);
for (const id of apps) {
  assert.equal((await api.apps.deleteApp(id)).status, 200);
}
await expectStatus(api.apps.getAppInfo(apps[0], fresh), 404, "deleted app");
assert.equal((await api.spaces.deleteSpaceAssignment(space.id, asg.data.id)).status, 204);
assert.equal((await api.spaces.deleteSpace(space.id)).status, 204);
await expectStatus(api.spaces.getSpace(space.id, fresh), 404, "deleted space");
const after = await api.items.getItems({ spaceId: space.id }, fresh);
assert.equal(after.data.data.length, 0);
ok("deleteDataFile 204, deleteApp 200, deleteSpaceAssignment 204, deleteSpace 204, then 404");
