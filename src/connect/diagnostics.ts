// The bridge's stderr voice: short human lines, because Claude Desktop shows stderr in its MCP log
// and users read it there. stdout is never touched; debug lines appear only with --verbose.

/** The logging surface the bridge needs; a pino Logger fits it too. */
export interface BridgeLog {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export function createStderrLog(options: { verbose: boolean; write?: (line: string) => void }): BridgeLog {
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const line = (message: string) => write(`mcp-relay: ${message}\n`);
  return {
    debug: options.verbose ? line : () => {},
    info: line,
    warn: line,
    error: line,
  };
}

export const silentBridgeLog: BridgeLog = { debug() {}, info() {}, warn() {}, error() {} };
