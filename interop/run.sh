#!/usr/bin/env bash
# Interoperability check: the official TypeScript, Python and Rust MCP SDK clients complete the OAuth
# flow against `mcp-auth serve --auto-approve --revision R` for each revision they speak, call a
# tool and check the negotiated protocol version; then our client runs the official conformance
# suite's client scenarios required by 2025-11-25 and by 2026-07-28, and the suite's
# authorization-server scenarios run against our AS. Exits non-zero on any failure.
#
#   interop/run.sh            everything (about 1-2 minutes once installed)
#   SKIP_CONFORMANCE=1 ...    only the SDK clients (TypeScript, Python, Rust)
#   MCP_AUTH_BIN=path ...     use this binary instead of building one
#   RMCP_CLIENT_BIN=path ...  use this build of interop/rmcp-client instead of building it
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
# rmcp's client is its own cargo workspace (interop/rmcp-client, Cargo.lock committed).
if [[ -z "${RMCP_CLIENT_BIN:-}" ]]; then
  (cd "$here/rmcp-client" && cargo build --quiet --locked)
  RMCP_CLIENT_BIN="${CARGO_TARGET_DIR:-$here/rmcp-client/target}/debug/rmcp-interop-client"
fi

[[ -x node_modules/.bin/node ]] || npm ci --no-audit --no-fund --loglevel=error
if [[ ! -x .venv/bin/python ]] || ! .venv/bin/pip freeze | diff -q - <(grep -v '^#' requirements.txt) >/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet -r requirements.txt
fi
export PATH="$here/node_modules/.bin:$PATH"   # Node 22 first

log=$(mktemp -d)
# --- SDK clients (one `serve --auto-approve --revision R` per revision under test) ---
servers=()
trap 'for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
# serve REVISION...: start a stack serving these revisions; sets $url to its MCP endpoint.
serve() {
  local out="$log/serve-${*// /+}" args=()
  for r in "$@"; do args+=(--revision "$r"); done
  : >"$out.out"
  "$MCP_AUTH_BIN" serve --memory --auto-approve "${args[@]}" >"$out.out" 2>"$out.err" &
  servers+=($!)
  url=""
  for _ in $(seq 100); do
    [[ $(wc -l <"$out.out") -ge 2 ]] && break
    sleep 0.1
  done
  url=$(sed -n 's/^MCP server: //p' "$out.out")
  [[ -n "$url" ]] || { echo "serve ${args[*]} did not start"; cat "$out.err"; exit 1; }
}
declare -A served
for revision in 2025-06-18 2025-11-25 2026-07-28; do
  serve "$revision"
  served[$revision]=$url
  echo "== mcp-auth serve --revision $revision: $url"
done

status=0
ts_version=$(node -p 'require("./node_modules/@modelcontextprotocol/sdk/package.json").version')
py_version=$(.venv/bin/pip show mcp | sed -n 's/^Version: //p')
# The TypeScript SDK speaks the initialize-based revisions (it proposes 2025-11-25); the Python
# SDK probes 2026-07-28's server/discover first and falls back to initialize.
for revision in 2025-06-18 2025-11-25; do
  echo "== TypeScript SDK $ts_version against --revision $revision"
  timeout 60 node ts_client.mjs "${served[$revision]}" "$revision" \
    || { echo "typescript-sdk $revision: FAILED"; status=1; }
done
for revision in 2025-06-18 2025-11-25 2026-07-28; do
  echo "== Python SDK $py_version against --revision $revision"
  timeout 60 .venv/bin/python python_client.py "${served[$revision]}" "$revision" \
    || { echo "python-sdk $revision: FAILED"; status=1; }
done
# rmcp (the Rust SDK) speaks all three: initialize proposing the revision, or server/discover.
for revision in 2025-06-18 2025-11-25 2026-07-28; do
  echo "== Rust SDK (rmcp 3.11.0, auth) against --revision $revision"
  timeout 60 "$RMCP_CLIENT_BIN" "${served[$revision]}" "$revision" \
    || { echo "rust-sdk $revision: FAILED"; status=1; }
done
# One endpoint serving all three: each SDK gets its newest revision, sessions and stateless
# requests side by side.
serve 2025-06-18 2025-11-25 2026-07-28
echo "== mcp-auth serve with all three revisions: $url"
echo "== TypeScript SDK $ts_version (expects 2025-11-25)"
timeout 60 node ts_client.mjs "$url" 2025-11-25 || { echo "typescript-sdk all: FAILED"; status=1; }
echo "== Python SDK $py_version (expects 2026-07-28)"
timeout 60 .venv/bin/python python_client.py "$url" 2026-07-28 || { echo "python-sdk all: FAILED"; status=1; }
for revision in 2025-06-18 2026-07-28; do
  echo "== Rust SDK (rmcp 3.11.0, auth) speaking $revision"
  timeout 60 "$RMCP_CLIENT_BIN" "$url" "$revision" || { echo "rust-sdk all $revision: FAILED"; status=1; }
done
# --- end of the SDK clients ---

if [[ -z "${SKIP_CONFORMANCE:-}" ]]; then
  # Our client against the suite's scored client scenarios of each revision, each with its own
  # baseline of expected failures (no auth/* scenario in either).
  for revision in 2025-11-25 2026-07-28; do
    echo "== conformance suite $(node -p 'require("./node_modules/@modelcontextprotocol/conformance/package.json").version'), client scenarios required by $revision"
    timeout 600 conformance client --command "$here/conformance-client.sh" --requirements "$revision" \
      --expected-failures "$here/conformance-baseline-$revision.yml" -o "$log/conformance-$revision" \
      2>"$log/conformance-$revision.err" \
      | sed -n '/SUITE SUMMARY/,$p' || { echo "conformance $revision: FAILED"; status=1; }
  done
fi
[[ -n "${SKIP_CONFORMANCE:-}" ]] || "$here/conformance-as.sh" || { echo "conformance-as: FAILED"; status=1; }
exit $status
