// A plain Streamable HTTP session for the bench scripts that drive a gateway's tools with no SDK in
// the way (no auth, on loopback: the user "local"); answers as JSON or as an SSE stream alike.

export interface ToolResult {
  content?: { text: string }[];
  structuredContent?: Record<string, unknown>;
}

export interface Mcp {
  /** The tool's result. */
  result(name: string, args: Record<string, unknown>): Promise<ToolResult>;
  /** The text of the tool's first content item. */
  call(name: string, args: Record<string, unknown>): Promise<string>;
}

/** A plain Streamable HTTP session (loopback, no auth: the user "local"), enough to call tools. */
export async function mcpSession(endpoint: string): Promise<Mcp> {
  const headers: Record<string, string> = {
    accept: 'application/json, text/event-stream',
    'content-type': 'application/json',
  };
  const post = async (body: unknown) => {
    const response = await fetch(endpoint, { method: 'POST', headers, body: JSON.stringify(body) });
    const text = await response.text();
    // A stream's answer is its last message; notifications may come first.
    const data = [...text.matchAll(/^data: (.+)$/gm)].at(-1)?.[1] ?? text;
    return { response, message: data ? (JSON.parse(data) as { result?: ToolResult }) : {} };
  };
  const init = await post({
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench', version: '1' } },
  });
  headers['mcp-session-id'] = init.response.headers.get('mcp-session-id') ?? '';
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  let id = 1;
  const result = async (name: string, args: Record<string, unknown>): Promise<ToolResult> => {
    const { message } = await post({
      jsonrpc: '2.0',
      id: id++,
      method: 'tools/call',
      params: { name, arguments: args },
    });
    return message.result ?? {};
  };
  return {
    result,
    async call(name, args) {
      return (await result(name, args)).content?.[0]?.text ?? '';
    },
  };
}
