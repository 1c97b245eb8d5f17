// The official MCP client (@modelcontextprotocol/sdk) against an MCP server, for the
// MCP paywall tests. Usage: node mcp_client.mjs <url> <scenario JSON>
//
// The scenario: {"token": "...", "steps": [...]}, or instead of a token
// {"oauth": {"clientId", "clientSecret", "expectedIssuer"}}: the client's own OAuth
// discovery (RFC 9728 metadata from the 401, the authorization server's metadata, a
// client-credentials token for the resource) with the SDK's ClientCredentialsProvider.
// Each step one of
//   {"list": true}                          → the tool names
//   {"call": "<tool>", "args": {...}}       → the tool result
//   {"concurrent": n, "call": "<tool>", "args": {...}}  → n results, called at once
// Prints one JSON line: {"steps": [...]} with each step's outcome, or
// {"connectError": {"message", "code"}} when the connection is refused.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

const [url, scenarioJson] = process.argv.slice(2);
const scenario = JSON.parse(scenarioJson);
const headers = scenario.token ? { Authorization: `Bearer ${scenario.token}` } : {};
const authProvider = scenario.oauth ? new ClientCredentialsProvider(scenario.oauth) : undefined;
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers }, authProvider });
const client = new Client({ name: 'paywall-tests', version: '1.0.0' });

function outcome(result) {
  return {
    isError: result.isError ?? false,
    text: (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join(''),
    structuredContent: result.structuredContent ?? null,
  };
}

async function call(step) {
  try {
    return outcome(await client.callTool({ name: step.call, arguments: step.args ?? {} }));
  } catch (err) {
    return { rpcError: { code: err.code ?? null, message: String(err.message ?? err), data: err.data ?? null } };
  }
}

try {
  await client.connect(transport);
} catch (err) {
  process.stdout.write(`${JSON.stringify({ connectError: { message: String(err.message ?? err), code: err.code ?? null } })}\n`);
  process.exit(0);
}

const steps = [];
for (const step of scenario.steps) {
  if (step.list) {
    const { tools } = await client.listTools();
    steps.push({ tools: tools.map((t) => t.name).sort() });
  } else if (step.concurrent) {
    steps.push({ results: await Promise.all(Array.from({ length: step.concurrent }, () => call(step))) });
  } else {
    steps.push(await call(step));
  }
}
const token = authProvider?.tokens()?.access_token ?? null;
await client.close();
process.stdout.write(`${JSON.stringify({ steps, token })}\n`);
