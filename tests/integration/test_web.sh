#!/usr/bin/env bash
# The web app (web/dist) on a real local stack, in headless Chromium (Debian's chromium driven
# by npm playwright-core, tests/e2e/web.mjs): sign-in (keyboard, wrong password, TOTP), session
# expiry and sign-out, CSRF on every write (and the stale-token retry), API keys (the token shown
# once works with curl, stops after revoke), users, invitations, groups and role-aware
# navigation, the account page, the hub (apps, spaces, members, data file upload, reloads — or
# its "not available" state), the audit viewer, a narrow window, and a second tenant (another
# hostname of the same ingress) that sees none of the first tenant's data. Then tests/e2e/apps.mjs:
# the data load editor, data model, reload schedules, identity providers and sign-in options;
# then tests/e2e/bookmarks.mjs: bookmarks, master measures and publishing to a managed space.
# Screenshots of every step: $TSR_BUILD_DIR/artifacts/e2e-web/.
source "$(dirname "$0")/lib.sh"

src=$TSR_SOURCE_DIR
command -v node >/dev/null || it_fail "node is missing (make deps)"
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || it_fail "$chromium is missing (make deps installs Debian's chromium)"
[ -d "$src/tests/e2e/node_modules/playwright-core" ] || it_fail "tests/e2e has no node_modules (make deps)"
if [ ! -f "$src/web/dist/index.html" ]; then
  [ -d "$src/web/node_modules" ] || it_fail "web/ has no node_modules (make deps)"
  (cd "$src/web" && npm run build --silent >/dev/null) || it_fail "web build"
fi

it_stack_up A
creds=$A_STATE/local/credentials.json

# The ingress serves the built app at / and answers client-side routes with index.html.
it_expect_status "$A_URL/" 200
grep -q '<div id="root">' /tmp/it-body.$$ || it_fail "/ is not the web app: $(head -c 300 /tmp/it-body.$$)"
it_expect_status "$A_URL/admin/api-keys" 200
grep -q '<div id="root">' /tmp/it-body.$$ || it_fail "a deep link does not serve index.html"
asset=$(grep -o '/assets/index-[^"]*\.js' /tmp/it-body.$$ | head -n1)
[ -n "$asset" ] || it_fail "index.html names no script under /assets/"
curl -fsS -D - -o /dev/null "$A_URL$asset" | grep -qi '^cache-control:.*immutable' ||
  it_fail "$asset is not served with an immutable cache header"
it_ok "nginx serves web/dist at / (deep links fall back to index.html, hashed assets cached)"

# Tenant B: another hostname of the same ingress, with its own admin.
host_b="b-$A_PORT.tessera.test"
b_json=$("$TSR_BUILD_DIR/cmd/tsr-admin/tsr-admin" tenant-create --state-dir "$A_STATE" --name b \
  --hostname "$host_b" --admin-email "admin@$host_b") || it_fail "tenant-create: $b_json"
jq -e '.user and .password and .apiKey' <<<"$b_json" >/dev/null || it_fail "tenant B admin: $b_json"
it_ok "tsr-admin tenant-create: tenant B on $host_b"

artifacts=$TSR_BUILD_DIR/artifacts/e2e-web
rm -rf "$artifacts"
start=$SECONDS
TSR_URL=$A_URL TSR_CREDS=$creds TSR_B_HOST=$host_b TSR_B_CREDS=$b_json E2E_ARTIFACTS=$artifacts \
  CHROMIUM=$chromium timeout 150 node "$src/tests/e2e/web.mjs" || it_fail "browser test (screenshots in $artifacts)"
it_ok "browser test in $((SECONDS - start)) s; screenshots in $artifacts"

# The app pages and sign-in administration (tests/e2e/apps.mjs): the data load editor (LOAD *
# INLINE, reload with its log, an error's line), the data model viewer, the RRULE builder and a
# saved reload task, identity providers (test connection, "Sign in with ..."), a 401 on an app
# page, and tenant B seeing none of tenant A's spaces, apps, schedules or audit events.
start=$SECONDS
TSR_URL=$A_URL TSR_CREDS=$creds TSR_B_HOST=$host_b TSR_B_CREDS=$b_json E2E_ARTIFACTS=$artifacts \
  CHROMIUM=$chromium timeout 150 node "$src/tests/e2e/apps.mjs" || it_fail "app pages browser test (screenshots in $artifacts)"
it_ok "app pages browser test in $((SECONDS - start)) s; screenshots in $artifacts/apps-*"

# Bookmarks, master measures and publishing (tests/e2e/bookmarks.mjs): a LOAD * INLINE app
# reloaded in the data load editor, a master measure used by a bar chart (qLibraryId), a
# selection kept in a bookmark (keyboard only), cleared and applied again, and the app published
# from a shared space to a managed space through the hub.
start=$SECONDS
TSR_URL=$A_URL TSR_CREDS=$creds E2E_ARTIFACTS=$artifacts CHROMIUM=$chromium \
  timeout 150 node "$src/tests/e2e/bookmarks.mjs" || it_fail "bookmarks browser test (screenshots in $artifacts/bookmarks-*)"
it_ok "bookmarks, master measures and publish browser test in $((SECONDS - start)) s; screenshots in $artifacts/bookmarks-*"
