#!/usr/bin/env bash
# The client command the conformance suite runs:
#   mcp-auth connect --headless --no-store --call-first-tool [options] URL
# The suite appends the server URL as the last argument and sets, for every scenario:
#   MCP_CONFORMANCE_SCENARIO          the scenario's name
#   MCP_CONFORMANCE_PROTOCOL_VERSION  the revision under test (--requirements), our --revision
#   MCP_CONFORMANCE_CONTEXT           (some scenarios) JSON: auth/pre-registration gives the
#                                     pre-registered client_id, client_secret and issuer
# What this script adds, and why:
#   --client-id/--client-secret/--client-issuer  from the context (auth/pre-registration)
#   --client-metadata-url  the Client ID Metadata Document URL the suite's mock AS expects as
#                          client_id (auth/basic-cimd); used only where the AS advertises
#                          client_id_metadata_document_supported
#   --args                 tools_call calls add_numbers and checks that a and b are numbers
#   --accept-prm-resource-prefix  only for auth/metadata-var2 (see README.md)
# MCP_AUTH_BIN names the binary.
set -euo pipefail
args=()
if [[ -n "${MCP_CONFORMANCE_PROTOCOL_VERSION:-}" ]]; then
  args+=(--revision "$MCP_CONFORMANCE_PROTOCOL_VERSION")
fi
if [[ -n "${MCP_CONFORMANCE_CONTEXT:-}" ]]; then
  field() { node -e 'const c=JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT); const v=c[process.argv[1]]; process.stdout.write(typeof v === "string" ? v : "")' "$1"; }
  id=$(field client_id)
  secret=$(field client_secret)
  issuer=$(field issuer)
  if [[ -n "$id" ]]; then
    args+=(--client-id "$id")
    [[ -n "$secret" ]] && args+=(--client-secret "$secret")
    [[ -n "$issuer" ]] && args+=(--client-issuer "$issuer")
  fi
fi
args+=(--client-metadata-url "https://conformance-test.local/client-metadata.json")
case "${MCP_CONFORMANCE_SCENARIO:-}" in
  tools_call) args+=(--args '{"a": 2, "b": 3}') ;;
  auth/metadata-var2) args+=(--accept-prm-resource-prefix) ;;
esac
exec "${MCP_AUTH_BIN:?set MCP_AUTH_BIN}" connect --headless --no-store --call-first-tool "${args[@]}" "$@"
