#!/usr/bin/env bash
# Interoperability check: the official TypeScript and Python MCP SDK clients complete the OAuth
# flow against `mcp-auth serve --auto-approve` and call a tool; then our client runs the
# official conformance suite's client auth scenarios. Exits non-zero on any failure.
#
#   interop/run.sh            everything (about 1-2 minutes once installed)
#   SKIP_CONFORMANCE=1 ...    only the two SDK clients
#   MCP_AUTH_BIN=path ...     use this binary instead of building one
#
# Installs into interop/node_modules (npm ci; includes Node 22 from the npm `node` package,
# which the suite needs) and interop/.venv (pip), both git-ignored.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$here"

if [[ -z "${MCP_AUTH_BIN:-}" ]]; then
  (cd "$root" && cargo build --quiet -p mcp-auth)
  MCP_AUTH_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/mcp-auth"
fi
export MCP_AUTH_BIN

[[ -x node_modules/.bin/node ]] || npm ci --no-audit --no-fund --loglevel=error
if [[ ! -x .venv/bin/python ]] || ! .venv/bin/pip freeze | diff -q - <(grep -v '^#' requirements.txt) >/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet -r requirements.txt
fi
export PATH="$here/node_modules/.bin:$PATH"   # Node 22 first

log=$(mktemp -d)
"$MCP_AUTH_BIN" serve --auto-approve >"$log/serve.out" 2>"$log/serve.err" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  [[ $(wc -l <"$log/serve.out") -ge 2 ]] && break
  sleep 0.1
done
url=$(sed -n 's/^MCP server: //p' "$log/serve.out")
[[ -n "$url" ]] || { echo "serve did not start"; cat "$log/serve.err"; exit 1; }
echo "== mcp-auth serve: $url"

status=0
echo "== TypeScript SDK ($(node -p 'require("./node_modules/@modelcontextprotocol/sdk/package.json").version'))"
timeout 60 node ts_client.mjs "$url" || { echo "typescript-sdk: FAILED"; status=1; }
echo "== Python SDK ($(.venv/bin/pip show mcp | sed -n 's/^Version: //p'))"
timeout 60 .venv/bin/python python_client.py "$url" || { echo "python-sdk: FAILED"; status=1; }

if [[ -z "${SKIP_CONFORMANCE:-}" ]]; then
  echo "== conformance suite $(node -p 'require("./node_modules/@modelcontextprotocol/conformance/package.json").version'), client auth scenarios"
  timeout 300 conformance client --command "$here/conformance-client.sh" --suite auth \
    --expected-failures "$here/conformance-baseline.yml" -o "$log/conformance" 2>"$log/conformance.err" \
    | sed -n '/SUITE SUMMARY/,$p' || { echo "conformance: FAILED"; status=1; }
fi
[[ -n "${SKIP_CONFORMANCE:-}" ]] || "$here/conformance-as.sh" || { echo "conformance-as: FAILED"; status=1; }
exit $status
