// The library entry (`import { createGateway } from 'mcp-relay'`): the gateway, the bridge, config
// loading, and the contracts a front or a backend implements. Everything else is internal and may move.

export type { BackendChannel, ChannelState } from './backends/channel.ts';
export { buildConfig, type LoadedConfig, loadConfigFile } from './config/load.ts';
export type { RelayConfig } from './config/schema.ts';
export { type Bridge, type BridgeOptions, createBridge } from './connect/bridge.ts';
export { RelayError, type RelayErrorCode } from './errors.ts';
export { createGateway, type Gateway, type GatewayOptions } from './gateway/create-gateway.ts';
export { createLogger, type Logger } from './log.ts';
export type { JsonRpcMessage } from './protocol/jsonrpc.ts';
export type { Downstream, Identity, MessageSink, ReplyTarget, Upstream } from './sessions/types.ts';
export { VERSION } from './version.ts';
