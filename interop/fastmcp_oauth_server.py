"""A FastMCP server with FastMCP's in-memory OAuth provider (its own AS on the same origin),
for interop/probe-peers.sh: `python fastmcp_oauth_server.py PORT`."""

import sys

from fastmcp import FastMCP
from fastmcp.server.auth.providers.in_memory import InMemoryOAuthProvider
from mcp.server.auth.settings import ClientRegistrationOptions

port = int(sys.argv[1])
base = f"http://127.0.0.1:{port}"
auth = InMemoryOAuthProvider(
    base_url=base,
    client_registration_options=ClientRegistrationOptions(enabled=True),
)
mcp = FastMCP("probe-peer", auth=auth)


@mcp.tool
def echo(text: str) -> str:
    """Echo the text."""
    return text


if __name__ == "__main__":
    mcp.run(transport="http", host="127.0.0.1", port=port, path="/mcp")
