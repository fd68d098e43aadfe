// The variable that carries the bridge's API key, and the placeholder `claude config` writes into it
// until the user pastes a key: a leaf, so claude/ need not load the bridge (undici, OAuth) to name them.

export const DEFAULT_TOKEN_ENV = 'MCP_RELAY_TOKEN';
export const TOKEN_PLACEHOLDER = '<paste your key from "mcp-relay keys create" here>';
