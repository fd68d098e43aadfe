// User and group names, one rule wherever they enter: API keys (`mcp-relay keys`, and each key the
// gateway accepts), OAuth claims, client certificates, the SSH forced command and the gateway
// socket's header. Names end up in logs, policy rules, state-file names and backends'
// MCP_RELAY_USER, where `.` and `..` read as paths: names made only of dots are not names.

/** The characters a name may have, and its length. */
const NAME_CHARACTERS = /^[A-Za-z0-9._@-]{1,64}$/;
const ONLY_DOTS = /^\.+$/;

/** The rule in words, for error messages. */
export const PRINCIPAL_NAME_RULE = '1-64 letters, digits or ._@-, not only dots';

/** Whether `name` may name a user or a group. */
export function isPrincipalName(name: string): boolean {
  return NAME_CHARACTERS.test(name) && !ONLY_DOTS.test(name);
}

/**
 * The characters alone, without the dot rule: what a keys file written before that rule may hold.
 * Such a file still loads, so `mcp-relay keys list|revoke` can clean it up, and the gateway refuses
 * a key whose user is not an `isPrincipalName` when it is used.
 */
export function hasPrincipalNameCharacters(name: string): boolean {
  return NAME_CHARACTERS.test(name);
}
