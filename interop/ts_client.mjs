// The official TypeScript MCP SDK client (npm @modelcontextprotocol/sdk) against
// `mcp-auth serve --auto-approve`.
//
// Usage: node ts_client.mjs MCP_URL EXPECTED_PROTOCOL_VERSION
//
// Runs the SDK's OAuthClientProvider flow headless: redirectToAuthorization fetches the
// authorization URL without following redirects, follows the authorization server's 303 to the
// loopback redirect URI (a tiny listener here that answers only its callback path), and hands
// the code back with transport.finishAuth(code). Then initialize, tools/list and
// tools/call whoami. Asserts that initialize negotiated EXPECTED_PROTOCOL_VERSION (the SDK
// proposes 2025-11-25 and accepts an older answer it knows). Exits non-zero on any failure.

import http from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const [url, expectedVersion] = process.argv.slice(2);
if (!url || !expectedVersion) {
  console.error('usage: node ts_client.mjs MCP_URL EXPECTED_PROTOCOL_VERSION');
  process.exit(2);
}

// The loopback redirect listener: GET /callback resolves `callback`; anything else is 404.
let resolveCallback;
const callback = new Promise((resolve) => (resolveCallback = resolve));
const listener = http.createServer((req, res) => {
  const target = new URL(req.url, 'http://127.0.0.1');
  if (req.method === 'GET' && target.pathname === '/callback') {
    resolveCallback(target.searchParams);
    res.writeHead(200, { 'content-type': 'text/plain' }).end('done');
  } else {
    res.writeHead(404).end('not found');
  }
});
await new Promise((resolve) => listener.listen(0, '127.0.0.1', resolve));
const redirectUri = `http://127.0.0.1:${listener.address().port}/callback`;

class HeadlessProvider {
  constructor() {
    this._tokens = undefined;
    this._client = undefined;
    this._verifier = undefined;
    this._state = undefined;
  }
  get redirectUrl() {
    return redirectUri;
  }
  get clientMetadata() {
    return {
      client_name: 'typescript-sdk interop client',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() {
    this._state = crypto.randomUUID();
    return this._state;
  }
  clientInformation() {
    return this._client;
  }
  saveClientInformation(info) {
    this._client = info;
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
  }
  saveCodeVerifier(verifier) {
    this._verifier = verifier;
  }
  codeVerifier() {
    return this._verifier;
  }
  // Play the user: the AS (auto-approve) answers with a 303 to our redirect URI; follow it.
  async redirectToAuthorization(authorizationUrl) {
    const answer = await fetch(authorizationUrl, { redirect: 'manual' });
    const location = answer.headers.get('location');
    if (![302, 303].includes(answer.status) || !location?.startsWith(redirectUri)) {
      throw new Error(`authorization endpoint answered ${answer.status} ${location}`);
    }
    await fetch(location);
  }
}

const provider = new HeadlessProvider();
const connect = async () => {
  const client = new Client({ name: 'typescript-sdk interop client', version: '0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  await client.connect(transport);
  return { client, transport };
};

let session;
try {
  session = await connect();
} catch (error) {
  if (!(error instanceof UnauthorizedError)) throw error;
  // The SDK has sent the user to the AS; the redirect came back to our listener.
  const query = await callback;
  if (query.get('error')) throw new Error(`authorization error: ${query}`);
  if (query.get('state') !== provider._state) throw new Error('state mismatch');
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  await transport.finishAuth(query.get('code'));
  session = await connect();
}
const { client, transport } = session;
console.log(`typescript-sdk: negotiated ${transport.protocolVersion}`);
const tools = (await client.listTools()).tools.map((t) => t.name).sort();
console.log(`typescript-sdk: tools ${JSON.stringify(tools)}`);
const result = await client.callTool({ name: 'whoami', arguments: {} });
const text = result.content.map((c) => c.text ?? '').join('');
console.log(`typescript-sdk: whoami -> ${text}`);
const claims = JSON.parse(text);
await transport.terminateSession().catch(() => {});
await client.close();
listener.close();
if (!tools.includes('whoami') || !claims.subject) {
  console.error('typescript-sdk: unexpected answer');
  process.exit(1);
}
if (transport.protocolVersion !== expectedVersion) {
  console.error(`typescript-sdk: negotiated ${transport.protocolVersion}, expected ${expectedVersion}`);
  process.exit(1);
}
console.log('typescript-sdk: OK');
