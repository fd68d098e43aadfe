// The lean stdio driver: the backend as Claude Desktop runs it, newline-delimited JSON-RPC on its pipes,
// with no gateway at all. `shared`: every session is a worker on one process (the backend's own ceiling);
// otherwise each session starts its own process (what session setup over stdio costs).

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { type BenchSession, CLIENT_INFO, type Connector, echoText, PROTOCOL_VERSION } from './types.ts';
import { ReplyWaiters } from './waiters.ts';

const CALL_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 2_000;

/** One backend process and the requests in flight on its pipes. */
class StdioConnection {
  readonly child: ChildProcess;
  readonly #replies = new ReplyWaiters();
  #buffer = '';

  constructor(command: string, args: readonly string[]) {
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'ignore'], shell: false });
    this.child.stdout?.setEncoding('utf8');
    this.child.stdout?.on('data', (chunk: string) => this.#onData(chunk));
    this.child.stdin?.on('error', () => {});
    this.child.once('exit', () => this.#replies.failAll(new Error('backend exited')));
    this.child.once('error', (error) => this.#replies.failAll(error));
  }

  async initialize(): Promise<void> {
    await this.rpc('initialize', {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: CLIENT_INFO,
    });
    this.#write({ jsonrpc: '2.0', method: 'notifications/initialized' });
  }

  rpc(method: string, params: unknown): Promise<unknown> {
    const { id, reply } = this.#replies.expect(method, CALL_TIMEOUT_MS);
    this.#write({ jsonrpc: '2.0', id, method, params });
    return reply;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.stdin?.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }

  #write(message: unknown): void {
    this.child.stdin?.write(`${JSON.stringify(message)}\n`);
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    let newline = this.#buffer.indexOf('\n');
    while (newline !== -1) {
      const line = this.#buffer.slice(0, newline);
      this.#buffer = this.#buffer.slice(newline + 1);
      newline = this.#buffer.indexOf('\n');
      if (line.trim()) this.#replies.settle(line);
    }
  }
}

export function stdioConnector(command: string, args: readonly string[], shared: boolean): Connector {
  const connections = new Set<StdioConnection>();
  let sharedConnection: Promise<StdioConnection> | undefined;

  const connect = async (): Promise<StdioConnection> => {
    const connection = new StdioConnection(command, args);
    connections.add(connection);
    await connection.initialize();
    return connection;
  };

  return {
    async open() {
      if (shared) {
        sharedConnection ??= connect();
        const connection = await sharedConnection;
        return {
          echo: async (text) =>
            echoText(await connection.rpc('tools/call', { name: 'echo', arguments: { text } })),
          close: async () => {},
        } satisfies BenchSession;
      }
      const connection = await connect();
      return {
        echo: async (text) =>
          echoText(await connection.rpc('tools/call', { name: 'echo', arguments: { text } })),
        close: async () => {
          connections.delete(connection);
          await connection.stop();
        },
      } satisfies BenchSession;
    },
    pids: () => [...connections].map((connection) => connection.child.pid).filter((pid) => pid !== undefined),
    async close() {
      await Promise.all([...connections].map((connection) => connection.stop()));
      connections.clear();
      sharedConnection = undefined;
    },
  };
}
