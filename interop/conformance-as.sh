#!/usr/bin/env bash
# The official conformance suite's authorization-server scenarios against our AS:
# `mcp-auth serve --auto-approve --revision 2025-11-25 --revision 2026-07-28`, a public client
# registered by DCR for http://127.0.0.1:3000/callback, then
# `conformance authorization --url ISSUER --client-id ID --resource MCP_URL`. The suite prints
# an authorization URL and waits for its callback on 127.0.0.1:3000: this script plays the
# browser (GET the URL without following redirects, then GET the 303's Location, the
# callback). Fails unless every scenario passes with no warning (a missing
# `client_id_metadata_document_supported` is a warning).
#
#   interop/conformance-as.sh        (run.sh calls it; needs `npm ci` done and curl, jq)
#   MCP_AUTH_BIN=path ...            use this binary instead of building one
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$here"

if [[ -z "${MCP_AUTH_BIN:-}" ]]; then
  (cd "$root" && cargo build --quiet -p mcp-auth)
  MCP_AUTH_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/mcp-auth"
fi
[[ -x node_modules/.bin/node ]] || npm ci --no-audit --no-fund --loglevel=error
export PATH="$here/node_modules/.bin:$PATH"   # Node 22 first

log=$(mktemp -d)
"$MCP_AUTH_BIN" serve --memory --auto-approve --revision 2025-11-25 --revision 2026-07-28 \
  >"$log/serve.out" 2>"$log/serve.err" &
server=$!
suite=""
cleanup() {
  [[ -n "$suite" ]] && kill "$suite" 2>/dev/null || true
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do
  [[ $(wc -l <"$log/serve.out") -ge 2 ]] && break
  sleep 0.1
done
issuer=$(sed -n 's/^Authorization server: //p' "$log/serve.out")
mcp_url=$(sed -n 's/^MCP server: //p' "$log/serve.out")
[[ -n "$issuer" && -n "$mcp_url" ]] || { echo "serve did not start"; cat "$log/serve.err"; exit 1; }

callback=http://127.0.0.1:3000/callback
client_id=$(curl -sf -X POST -H 'content-type: application/json' \
  -d "{\"redirect_uris\":[\"$callback\"],\"token_endpoint_auth_method\":\"none\",\"grant_types\":[\"authorization_code\",\"refresh_token\"],\"client_name\":\"conformance suite\"}" \
  "$issuer/register" | jq -r .client_id)
[[ -n "$client_id" && "$client_id" != null ]] || { echo "registration failed"; exit 1; }

echo "== conformance suite $(node -p 'require("./node_modules/@modelcontextprotocol/conformance/package.json").version'), authorization server scenarios against $issuer"
timeout 120 conformance authorization --url "$issuer" --client-id "$client_id" \
  --resource "$mcp_url" -o "$log/results" >"$log/suite.out" 2>&1 &
suite=$!

# Play the browser: wait for the authorization URL, GET it (auto-approve answers 303 to the
# callback with the code), then deliver the callback.
url=""
for _ in $(seq 300); do
  url=$(grep -s -m1 -o 'http://[^ ]*/authorize?[^ ]*' "$log/suite.out" || true)
  [[ -n "$url" ]] && grep -qs 'Callback server started' "$log/suite.out" && break
  kill -0 "$suite" 2>/dev/null || break
  sleep 0.1
done
[[ -n "$url" ]] || { echo "the suite printed no authorization URL"; cat "$log/suite.out"; exit 1; }
location=$(curl -s -o /dev/null -w '%{redirect_url}' "$url")
[[ "$location" == "$callback?"* ]] || { echo "authorize did not redirect to the callback: '$location'"; exit 1; }
curl -sf -o /dev/null "$location" || { echo "the callback failed"; exit 1; }

status=0
wait "$suite" || status=$?
suite=""
sed -n '/=== SUMMARY ===/,$p' "$log/suite.out"
[[ $status -eq 0 ]] || { echo "conformance-as: the suite exited $status"; cat "$log/suite.out"; exit 1; }

# Every check of every scenario must be SUCCESS (no FAILURE, no WARNING such as a missing
# client_id_metadata_document_supported), and both scenarios must have run.
checks=$(find "$log/results" -name checks.json)
scenarios=$(echo "$checks" | grep -c . || true)
bad=$(cat $checks | jq -r '.[] | select(.status != "SUCCESS" and .status != "INFO") | "\(.status) \(.id): \(.errorMessage // .description)"')
if [[ $scenarios -lt 2 || -n "$bad" ]]; then
  echo "conformance-as: FAILED ($scenarios scenario result files)"
  echo "$bad"
  exit 1
fi
echo "conformance-as: $scenarios scenarios, every check SUCCESS, no warning"
