// `mcp-relay connect <url>`: the local bridge Claude Desktop launches. Parses flags, runs the bridge
// on this process's stdio until stdin ends or a signal arrives, and resolves to the exit code.

import { type ArgsDef, defineCommand, type ParsedArgs } from 'citty';
import { createBridge } from '../../connect/bridge.ts';
import { createStderrLog } from '../../connect/diagnostics.ts';
import { DEFAULT_LOGIN_TIMEOUT } from '../../connect/oauth/options.ts';
import {
  type ConnectFlags,
  DEFAULT_IDLE_TIMEOUT,
  DEFAULT_RECONNECT_WAIT,
  resolveConnectSetup,
} from '../../connect/options.ts';
import { DEFAULT_TOKEN_ENV } from '../../connect/token-env.ts';
import { collectRepeatedFlag } from '../flags.ts';
import { ioFrom } from '../io.ts';

/** The flags that say how to reach a gateway, shared by `connect` and `doctor`. */
export const connectionArgs = {
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
  cert: {
    type: 'string',
    valueHint: 'FILE',
    description: 'PEM file with this client’s certificate, for gateways that require mTLS (with --key)',
  },
  key: {
    type: 'string',
    valueHint: 'FILE',
    description: 'PEM file with the private key of --cert (unencrypted)',
  },
  proxy: {
    type: 'string',
    valueHint: 'URL',
    description: 'HTTP proxy to tunnel through (default: HTTPS_PROXY / HTTP_PROXY, minus NO_PROXY)',
  },
} satisfies ArgsDef;

/** The part of connect's setup those flags give. */
export function connectionFlags(
  args: ParsedArgs<typeof connectionArgs>,
  rawArgs: readonly string[],
): Pick<ConnectFlags, 'url' | 'headers' | 'tokenEnv' | 'caFile' | 'certFile' | 'keyFile' | 'proxy'> {
  return {
    url: args.url,
    headers: collectRepeatedFlag(rawArgs, '--header', '-H'),
    tokenEnv: args['token-env'],
    caFile: args.ca,
    certFile: args.cert,
    keyFile: args.key,
    proxy: args.proxy,
  };
}

export const connectCommand = defineCommand({
  meta: {
    name: 'connect',
    description:
      'Bridge a stdio MCP client (Claude Desktop) to an mcp-relay gateway or any MCP server over Streamable HTTP, legacy HTTP+SSE or WebSocket.',
  },
  args: {
    ...connectionArgs,
    oauth: {
      type: 'boolean',
      default: true,
      description: 'sign in with OAuth when the server asks for it and no token is set (browser)',
      negativeDescription: 'never sign in; a server that asks for a token gets an explanation',
    },
    'client-id': {
      type: 'string',
      valueHint: 'ID',
      description: 'OAuth: a client id registered with the authorization server (else dynamic registration)',
    },
    'client-metadata-url': {
      type: 'string',
      valueHint: 'URL',
      description: 'OAuth: an https URL serving this client’s metadata document, used as its client id',
    },
    scope: {
      type: 'string',
      valueHint: 'SCOPES',
      description: 'OAuth: the scopes to ask for (default: what the server names)',
    },
    'callback-port': {
      type: 'string',
      valueHint: 'PORT',
      description: 'OAuth: a fixed port on 127.0.0.1 for the sign-in redirect (default: any free one)',
    },
    browser: {
      type: 'string',
      valueHint: 'COMMAND',
      description:
        'OAuth: command that opens the sign-in URL (default MCP_RELAY_BROWSER, else the system browser; none: only print it)',
    },
    'login-timeout': {
      type: 'string',
      default: DEFAULT_LOGIN_TIMEOUT,
      valueHint: 'DURATION',
      description: 'OAuth: how long to wait for the browser sign-in',
    },
    timeout: {
      type: 'string',
      default: '5m',
      description: 'fail a request that gets no answer and no progress for this long (e.g. 30s, 5m)',
    },
    'reconnect-wait': {
      type: 'string',
      default: DEFAULT_RECONNECT_WAIT,
      valueHint: 'DURATION',
      description: 'how long a call waits for a gateway that refuses connections (a restart) before failing',
    },
    'idle-timeout': {
      type: 'string',
      default: DEFAULT_IDLE_TIMEOUT,
      valueHint: 'DURATION',
      description:
        'drop a connection or event stream silent this long as dead and recover (auto: 3 keep-alive intervals the gateway advertises; 0s: never)',
    },
    transport: {
      type: 'string',
      default: 'auto',
      valueHint: 'auto|http|sse|ws',
      description:
        'how to speak to the server: http (Streamable HTTP), sse (the legacy HTTP+SSE transport), ws (WebSocket); auto: ws for ws:// URLs, else Streamable HTTP, falling back to SSE when the server refuses it',
    },
    verbose: {
      type: 'boolean',
      default: false,
      description: 'more detail on stderr (stdout only ever carries protocol messages)',
    },
  },
  async run({ args, rawArgs, data }): Promise<number> {
    const io = ioFrom(data);
    const input = io.stdin ?? process.stdin;
    const log = createStderrLog({ verbose: args.verbose, write: (line) => io.stderr.write(line) });
    const setup = resolveConnectSetup(
      {
        ...connectionFlags(args, rawArgs),
        timeout: args.timeout,
        reconnectWait: args['reconnect-wait'],
        idleTimeout: args['idle-timeout'],
        transport: args.transport,
        oauth: {
          enabled: args.oauth,
          clientId: args['client-id'],
          clientMetadataUrl: args['client-metadata-url'],
          scope: args.scope,
          callbackPort: args['callback-port'],
          browser: args.browser,
          loginTimeout: args['login-timeout'],
        },
      },
      io.env,
      log,
    );
    const bridge = createBridge({
      ...setup,
      input,
      output: io.stdout,
      log,
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
      input.destroy();
      await setup.auth.close?.();
    }
    return 0;
  },
});
