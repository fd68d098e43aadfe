// The benchmark's backend: a tiny stdio MCP server built with the official SDK, with an `echo` tool and a
// `sleep` tool. Every target fronts this same program, so what differs between targets is the transport.
// Plain .mjs rather than .ts: type stripping would add ~60 ms and ~15 MB to every process a target starts.
//   node bench/backend.mjs

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const server = new McpServer({ name: 'bench-backend', version: '1.0.0' });

server.registerTool(
  'echo',
  { description: 'Returns the text it was given', inputSchema: { text: z.string() } },
  async ({ text }) => ({ content: [{ type: 'text', text }] }),
);

server.registerTool(
  'sleep',
  {
    description: 'Waits `ms` milliseconds (at most 60 s), then returns the text it was given',
    inputSchema: { ms: z.number().int().min(0).max(60_000), text: z.string().optional() },
  },
  async ({ ms, text }) => {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return { content: [{ type: 'text', text: text ?? `slept ${ms} ms` }] };
  },
);

await server.connect(new StdioServerTransport());
