#!/usr/bin/env bash
# `mcp-auth probe` against two peers, installed from their registries into git-ignored folders:
# the TypeScript SDK's example server (`simpleStreamableHttp --oauth`, its demo in-memory AS)
# from interop/node_modules (npm ci), and a FastMCP server with FastMCP's in-memory OAuth
# provider (fastmcp_oauth_server.py) from interop/peers/.venv (pip). Each is probed with
# --unsafe (they are throwaway local servers); prints the counts by level and the failed
# checks, and leaves the JSON reports in interop/peers/. Not part of CI: the peers' figures are
# information, not a gate.
set -euo pipefail
cd "$(dirname "$0")"
FASTMCP_VERSION=4.0.10

[[ -x node_modules/.bin/node ]] || npm ci --no-audit --no-fund --loglevel=error
export PATH="$PWD/node_modules/.bin:$PATH"
mkdir -p peers
[[ -x peers/.venv/bin/python ]] || python3 -m venv peers/.venv
peers/.venv/bin/pip show fastmcp 2>/dev/null | grep -qx "Version: $FASTMCP_VERSION" ||
  peers/.venv/bin/pip install --quiet "fastmcp==$FASTMCP_VERSION"

(cd .. && cargo build --quiet -p mcp-auth --bin mcp-auth)
bin="${CARGO_TARGET_DIR:-$PWD/../target}/debug/mcp-auth"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "nothing listens on port $1" >&2
  return 1
}

summary() { # name report.json
  python3 - "$1" "$2" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
print(f"{name}: {r['requests']} requests")
for level, c in r["counts"].items():
    print(f"  {level:<6} pass {c['pass']:>3}  fail {c['fail']:>3}  warn {c['warn']:>3}  skip {c['skip']:>3}")
for f in r["findings"]:
    if f["verdict"] in ("FAIL", "WARN"):
        print(f"  {f['verdict']} {','.join(f['ids'])} {f['name']}: {f['title']}")
PY
}

# The TypeScript SDK's example server and its demo AS.
mcp_port=$(free_port)
auth_port=$(free_port)
MCP_PORT=$mcp_port MCP_AUTH_PORT=$auth_port node \
  node_modules/@modelcontextprotocol/sdk/dist/esm/examples/server/simpleStreamableHttp.js --oauth \
  >peers/ts-server.log 2>&1 &
pids+=($!)
wait_port "$mcp_port"
wait_port "$auth_port"
"$bin" probe "http://localhost:$mcp_port/mcp" --unsafe --json >peers/ts-sdk.json || true
summary "typescript-sdk $(node -p 'require("./node_modules/@modelcontextprotocol/sdk/package.json").version') simpleStreamableHttp --oauth" peers/ts-sdk.json

# FastMCP with its in-memory OAuth provider.
port=$(free_port)
peers/.venv/bin/python fastmcp_oauth_server.py "$port" >peers/fastmcp-server.log 2>&1 &
pids+=($!)
wait_port "$port"
"$bin" probe "http://127.0.0.1:$port/mcp" --unsafe --json >peers/fastmcp.json || true
summary "fastmcp $FASTMCP_VERSION InMemoryOAuthProvider" peers/fastmcp.json
