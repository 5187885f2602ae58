#!/usr/bin/env bash
# The client command the conformance suite runs: `mcp-auth connect --headless --no-store URL`.
# The suite appends the server URL as the last argument, and for the pre-registration scenario
# passes the client's credentials in MCP_CONFORMANCE_CONTEXT (JSON); they become --client-id /
# --client-secret. MCP_AUTH_BIN names the binary.
set -euo pipefail
args=()
if [[ -n "${MCP_CONFORMANCE_CONTEXT:-}" ]]; then
  id=$(node -e 'const c=JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT); process.stdout.write(c.client_id ?? "")')
  secret=$(node -e 'const c=JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT); process.stdout.write(c.client_secret ?? "")')
  [[ -n "$id" ]] && args+=(--client-id "$id")
  [[ -n "$secret" ]] && args+=(--client-secret "$secret")
fi
exec "${MCP_AUTH_BIN:?set MCP_AUTH_BIN}" connect --headless --no-store --call-first-tool "${args[@]}" "$@"
