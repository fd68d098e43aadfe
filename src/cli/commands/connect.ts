// `mcp-relay connect <url>`: the local bridge Claude Desktop launches. Parses flags, runs the bridge
// on this process's stdio until stdin ends or a signal arrives, and resolves to the exit code.

import { defineCommand } from 'citty';
import { createBridge } from '../../connect/bridge.ts';
import { createStderrLog } from '../../connect/diagnostics.ts';
import { collectRepeatedFlag, DEFAULT_TOKEN_ENV, resolveConnectSetup } from '../../connect/options.ts';

export const connectCommand = defineCommand({
  meta: {
    name: 'connect',
    description:
      'Bridge a stdio MCP client (Claude Desktop) to an mcp-relay gateway or any Streamable HTTP MCP server.',
  },
  args: {
    url: {
      type: 'positional',
      required: true,
      description: 'the MCP endpoint, e.g. https://mcp.example.com/mcp/3d',
    },
    header: {
      type: 'string',
      alias: 'H',
      valueHint: 'Name: Value',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the literal ${VAR} syntax shown to the user.
      description: 'extra HTTP header, repeatable; ${VAR} in the value reads the environment',
    },
    'token-env': {
      type: 'string',
      default: DEFAULT_TOKEN_ENV,
      valueHint: 'NAME',
      description: 'environment variable holding the API key, sent as Authorization: Bearer',
    },
    ca: {
      type: 'string',
      valueHint: 'FILE',
      description: 'PEM file with the CA certificate(s) that signed the gateway certificate',
    },
    timeout: {
      type: 'string',
      default: '5m',
      description: 'fail a request that gets no answer and no progress for this long (e.g. 30s, 5m)',
    },
    verbose: {
      type: 'boolean',
      default: false,
      description: 'more detail on stderr (stdout only ever carries protocol messages)',
    },
  },
  async run({ args, rawArgs }): Promise<number> {
    const setup = resolveConnectSetup(
      {
        url: args.url,
        headers: collectRepeatedFlag(rawArgs, '--header', '-H'),
        tokenEnv: args['token-env'],
        caFile: args.ca,
        timeout: args.timeout,
      },
      process.env,
    );
    const bridge = createBridge({
      ...setup,
      input: process.stdin,
      output: process.stdout,
      log: createStderrLog({ verbose: args.verbose }),
    });
    const stop = () => {
      void bridge.close();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    try {
      await bridge.closed;
    } finally {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      // After a signal stdin may still be open; it must not keep the process alive.
      process.stdin.destroy();
    }
    return 0;
  },
});
