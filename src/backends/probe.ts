// Starts one backend of a server the way the gateway would (BackendLauncher → BackendProcess), asks it
// `initialize`, and stops it: whether the server can run at all, told before a user finds out.

import { errorText } from '../errors.ts';
import type { JsonRpcMessage, JsonRpcResponse } from '../protocol/jsonrpc.ts';
import { Method } from '../protocol/mcp.ts';
import { LATEST_PROTOCOL_VERSION } from '../protocol/versions.ts';
import type { BackendLauncher } from './launcher.ts';
import type { BackendExit, BackendProcess } from './process.ts';

export interface ProbeResult {
  ok: boolean;
  /** What happened: the server's name and version, or why it failed. */
  message: string;
  /** From spawn to the answer (or the failure). */
  ms: number;
  /** The backend's last stderr lines, when it failed. */
  stderr: readonly string[];
}

const PROBE_ID = 'mcp-relay-check';
/** How long a probed backend gets to exit after its stdin closes, before SIGTERM. */
const PROBE_STOP_GRACE_MS = 1_000;

type Outcome =
  | { kind: 'answer'; response: JsonRpcResponse }
  | { kind: 'exit'; exit: BackendExit }
  | { kind: 'timeout' };

/**
 * Launches `server` once, as a shared backend would be (no MCP_RELAY_USER), sends initialize and waits
 * up to `timeoutMs` for the answer. Never throws: a launch that fails is a failed probe.
 */
export async function probeBackend(
  launcher: BackendLauncher,
  server: string,
  timeoutMs: number,
): Promise<ProbeResult> {
  const started = Date.now();
  const elapsed = () => Date.now() - started;
  let backend: BackendProcess;
  try {
    backend = await launcher.launch({ server, user: undefined });
  } catch (error) {
    return { ok: false, message: `could not be prepared: ${errorText(error)}`, ms: elapsed(), stderr: [] };
  }
  let timer: NodeJS.Timeout | undefined;
  const outcome = await new Promise<Outcome>((resolve) => {
    backend.onmessage = (message: JsonRpcMessage) => {
      if ('id' in message && message.id === PROBE_ID && !('method' in message)) {
        resolve({ kind: 'answer', response: message });
      }
    };
    backend.onexit = (exit) => resolve({ kind: 'exit', exit });
    timer = setTimeout(() => resolve({ kind: 'timeout' }), timeoutMs);
    backend.start();
    backend.send({
      jsonrpc: '2.0',
      id: PROBE_ID,
      method: Method.initialize,
      params: {
        protocolVersion: LATEST_PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: 'mcp-relay-check', version: '1' },
      },
    });
  });
  clearTimeout(timer);
  const ms = elapsed();
  if (outcome.kind === 'answer') {
    await backend.stop(PROBE_STOP_GRACE_MS);
    const { response } = outcome;
    if ('error' in response) {
      return {
        ok: false,
        message: `refused initialize: ${response.error.message}`,
        ms,
        stderr: await backend.finalStderrTail(),
      };
    }
    const info = response.result.serverInfo as { name?: unknown; version?: unknown } | undefined;
    const name =
      typeof info?.name === 'string'
        ? ` (${info.name}${typeof info.version === 'string' ? ` ${info.version}` : ''})`
        : '';
    return { ok: true, message: `answered initialize in ${ms} ms${name}`, ms, stderr: [] };
  }
  if (outcome.kind === 'timeout') {
    // The polite stop, so a wrapper (npx, uv run) passes SIGTERM on rather than leaving its child behind.
    await backend.stop(PROBE_STOP_GRACE_MS);
    return {
      ok: false,
      message: `did not answer initialize within ${Math.round(timeoutMs / 100) / 10} s`,
      ms,
      stderr: await backend.finalStderrTail(),
    };
  }
  const { exit } = outcome;
  const message = exit.error
    ? `could not be started: ${exit.error.message}`
    : `exited (${exit.signal ?? `code ${exit.code}`}) before answering initialize`;
  return { ok: false, message, ms, stderr: await backend.finalStderrTail() };
}
