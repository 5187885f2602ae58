"""The official Python MCP SDK client (PyPI `mcp`) against `mcp-auth serve --auto-approve`.

Usage: python_client.py MCP_URL EXPECTED_PROTOCOL_VERSION

Runs the SDK's OAuthClientProvider flow headless: the redirect handler fetches the
authorization URL without following redirects, follows the authorization server's 303 to the
SDK's loopback redirect URI (a tiny listener here, which answers only its callback path) and
hands code, state and iss back through the callback handler. Then the SDK's default
`mode="auto"` connect (the 2026-07-28 `server/discover` probe, falling back to `initialize`),
tools/list and tools/call whoami. Asserts the negotiated protocol version, and that a
2026-07-28 one came from `server/discover` (no `initialize`). Exits non-zero on any failure.
"""

import asyncio
import json
import sys
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp.client.auth import OAuthClientProvider
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)


class MemoryStorage:
    """Tokens and client registration kept in memory for this run."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class CallbackListener:
    """A loopback redirect listener: answers GET /callback (records the query), 404 otherwise."""

    def __init__(self) -> None:
        self.result: asyncio.Future[dict[str, list[str]]] | None = None
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.result = asyncio.get_running_loop().create_future()
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode("latin-1")
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        parts = request_line.split(" ")
        target = urlparse(parts[1]) if len(parts) > 1 else urlparse("/")
        ok = parts[0] == "GET" and target.path == "/callback"
        if ok and self.result is not None and not self.result.done():
            self.result.set_result(parse_qs(target.query))
        body = b"done" if ok else b"not found"
        status = b"200 OK" if ok else b"404 Not Found"
        writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"


async def main(url: str, expected_version: str) -> int:
    listener = CallbackListener()
    await listener.start()

    async def redirect_handler(authorization_url: str) -> None:
        # Play the user: the AS (auto-approve) answers the authorization URL with a 303 to
        # our redirect URI; follow it like a browser would.
        async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as http:
            answer = await http.get(authorization_url)
            if answer.status_code not in (302, 303):
                raise RuntimeError(f"authorization endpoint answered {answer.status_code}: {answer.text[:200]}")
            location = answer.headers["location"]
            if not location.startswith(listener.redirect_uri):
                raise RuntimeError(f"redirected elsewhere: {location}")
            await http.get(location)

    async def callback_handler() -> AuthorizationCodeResult:
        assert listener.result is not None
        query = await asyncio.wait_for(listener.result, 10)
        if "error" in query:
            raise RuntimeError(f"authorization error: {query}")
        return AuthorizationCodeResult(
            code=query["code"][0],
            state=query.get("state", [None])[0],
            iss=query.get("iss", [None])[0],
        )

    auth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="python-sdk interop client",
            redirect_uris=[listener.redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=MemoryStorage(),
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    async with httpx2.AsyncClient(auth=auth, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            negotiated = client.protocol_version
            discovered = client.session.discover_result is not None
            how = "server/discover" if discovered else "initialize"
            print(f"python-sdk: negotiated {negotiated} ({how})")
            if negotiated != expected_version:
                print(f"python-sdk: expected {expected_version}", file=sys.stderr)
                return 1
            if discovered != (expected_version >= "2026-07-28"):
                print(f"python-sdk: {expected_version} should not come from {how}", file=sys.stderr)
                return 1
            tools = await client.list_tools()
            names = sorted(t.name for t in tools.tools)
            print(f"python-sdk: tools {names}")
            result = await client.call_tool("whoami", {})
            text = "".join(getattr(c, "text", "") for c in result.content)
            print(f"python-sdk: whoami -> {text}")
            claims = json.loads(text)
            if "whoami" not in names or not claims.get("subject"):
                print("python-sdk: unexpected answer", file=sys.stderr)
                return 1
    print("python-sdk: OK")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
