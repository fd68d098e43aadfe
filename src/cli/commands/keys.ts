// `mcp-relay keys create|list|revoke`: manages the API-key file named by relay.yaml (or --keys-file).
// The key is printed once, to stdout only; everything else goes to stderr. With a `cluster` section in
// the config, a revocation also reaches every replica through Redis (cluster/revocations.ts).

import { createInterface } from 'node:readline/promises';
import { type ArgsDef, defineCommand } from 'citty';
import { createKey, type KeySummary, listKeys, revokeKey, revokeUserKeys } from '../../auth/key-admin.ts';
import { PRINCIPAL_NAME_RULE } from '../../auth/principal-name.ts';
import { RedisLink } from '../../cluster/redis-link.ts';
import { publishRevocations } from '../../cluster/revocations.ts';
import { type LoadedConfig, loadConfigFile } from '../../config/load.ts';
import type { ClusterConfig } from '../../config/schema.ts';
import { formatDuration, parseDuration } from '../../config/units.ts';
import { errorText, RelayError } from '../../errors.ts';
import { silentLogger } from '../../log.ts';
import { absolutePathIn, type CliIo, ioFrom, pathIn } from '../io.ts';
import { alignColumns } from '../table.ts';

const fileArgs = {
  config: {
    type: 'string',
    description: 'relay config whose auth.apiKeys.file names the keys file',
    default: './relay.yaml',
    valueHint: 'FILE',
  },
  'keys-file': {
    type: 'string',
    description:
      'the keys file itself (instead of reading its path from --config; name --config too to revoke across a cluster)',
    valueHint: 'FILE',
  },
} satisfies ArgsDef;

const createCommand = defineCommand({
  meta: { name: 'create', description: 'Create an API key for a user and print it once' },
  args: {
    user: { type: 'positional', description: `user name (${PRINCIPAL_NAME_RULE})`, required: true },
    expires: {
      type: 'string',
      description: 'lifetime, e.g. 90d or 12h (default: never expires)',
      valueHint: 'DURATION',
    },
    group: { type: 'string', description: 'a group the user belongs to (repeatable)', valueHint: 'NAME' },
    ...fileArgs,
  },
  async run({ args, rawArgs, data }) {
    const io = ioFrom(data);
    const file = keysFileFrom(args, io);
    const expiresInMs = args.expires === undefined ? undefined : parseLifetime(args.expires);
    const { key, record } = await createKey(file, {
      user: args.user,
      groups: repeatedOption(rawArgs, 'group'),
      ...(expiresInMs === undefined ? {} : { expiresInMs }),
    });
    io.stdout.write(`${key}\n`);
    const groups = record.groups.length > 0 ? `, groups ${record.groups.join(',')}` : '';
    const expiry =
      record.expires && expiresInMs !== undefined
        ? `expires ${record.expires} (in ${formatDuration(expiresInMs)})`
        : 'never expires';
    io.stderr.write(
      `created key ${record.id} for ${record.user}${groups}; ${expiry}.\n` +
        'The key above is shown only this once: give it to the user now (their MCP_RELAY_TOKEN).\n',
    );
    return 0;
  },
});

const listCommand = defineCommand({
  meta: { name: 'list', description: 'List API keys (never the keys or their hashes)' },
  args: {
    json: { type: 'boolean', description: 'print JSON instead of a table', default: false },
    ...fileArgs,
  },
  async run({ args, data }) {
    const io = ioFrom(data);
    const file = keysFileFrom(args, io);
    const keys = await listKeys(file);
    if (args.json) {
      io.stdout.write(`${JSON.stringify(keys, null, 2)}\n`);
    } else if (keys.length === 0) {
      io.stderr.write(`no API keys in ${file}\n`);
    } else {
      io.stdout.write(`${formatTable(keys)}\n`);
    }
    return 0;
  },
});

const revokeCommand = defineCommand({
  meta: {
    name: 'revoke',
    description: "Revoke (delete) an API key by id, or all of a user's keys by user name",
  },
  args: {
    target: {
      type: 'positional',
      description: 'a key id shown by "keys list", or a user name (all of that user\'s keys)',
      required: true,
    },
    yes: { type: 'boolean', description: "revoke a user's keys without asking", default: false },
    ...fileArgs,
  },
  async run({ args, rawArgs, data }) {
    const io = ioFrom(data);
    const { file, cluster } = keysTarget(args, rawArgs, io);
    const keys = await listKeys(file);
    const soon = `${cluster ? 'every replica of the cluster' : 'a running gateway'} stops accepting them within 2 seconds and ends their sessions`;
    if (keys.some((key) => key.id === args.target)) {
      // Redis first: when it cannot be reached nothing is revoked anywhere, and the command says so.
      if (cluster) await revokeAcrossCluster(cluster, [args.target]);
      const record = await revokeKey(file, args.target);
      io.stderr.write(`revoked key ${record.id} of ${record.user}; ${soon.replace('them', 'it')}.\n`);
      return 0;
    }
    const owned = keys.filter((key) => key.user === args.target);
    if (owned.length === 0) {
      throw new RelayError(
        'KEY_NOT_FOUND',
        `no key with id, and no user, "${printable(args.target)}" in ${file} (see "mcp-relay keys list")`,
      );
    }
    const user = args.target;
    io.stderr.write(
      `${user} has ${owned.length} key${owned.length === 1 ? '' : 's'}:\n${formatTable(owned)}\n`,
    );
    if (!args.yes && !(await confirm(io, `Revoke ${owned.length === 1 ? 'it' : 'all of them'}? [y/N] `))) {
      io.stderr.write('nothing revoked (pass --yes to revoke without asking).\n');
      return 1;
    }
    const ids = owned.map((key) => key.id);
    if (cluster) await revokeAcrossCluster(cluster, ids);
    const revoked = await revokeUserKeys(file, user, ids);
    io.stderr.write(`revoked ${revoked.length} key${revoked.length === 1 ? '' : 's'} of ${user}; ${soon}.\n`);
    return 0;
  },
});

/** Asks on the terminal; without one (a script, a pipe) the answer is no. */
async function confirm(io: CliIo, question: string): Promise<boolean> {
  const input = io.stdin ?? process.stdin;
  if (!(input as { isTTY?: boolean }).isTTY) return false;
  const lines = createInterface({ input, output: io.stderr });
  try {
    const answer = await lines.question(question);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    lines.close();
  }
}

export const keysCommand = defineCommand({
  meta: { name: 'keys', description: 'Manage API keys (the file holds only hashes)' },
  subCommands: { create: createCommand, list: listCommand, revoke: revokeCommand },
});

function keysFileFrom(args: { config: string; 'keys-file'?: string | undefined }, io: CliIo): string {
  return keysTarget(args, [], io).file;
}

/**
 * The keys file, and the cluster its revocations go to: the config's `cluster`, read when the file
 * comes from --config, or when --config is named beside --keys-file.
 */
function keysTarget(
  args: { config: string; 'keys-file'?: string | undefined },
  rawArgs: readonly string[],
  io: CliIo,
): { file: string; cluster?: ClusterConfig } {
  const direct = args['keys-file'];
  if (direct !== undefined && direct !== '') {
    const file = absolutePathIn(io, direct);
    const namesConfig = rawArgs.some((word) => word === '--config' || word.startsWith('--config='));
    const cluster = namesConfig ? loadConfigFile(pathIn(io, args.config), io.env).config.cluster : undefined;
    return cluster ? { file, cluster } : { file };
  }
  let loaded: LoadedConfig;
  try {
    loaded = loadConfigFile(pathIn(io, args.config), io.env);
  } catch (error) {
    if (error instanceof RelayError && error.code === 'CONFIG_NOT_FOUND') {
      throw new RelayError('CONFIG_NOT_FOUND', `${error.message} (pass --config FILE or --keys-file FILE)`);
    }
    throw error;
  }
  const { config, path } = loaded;
  const file = config.auth.apiKeys?.file;
  if (file === undefined) {
    throw new RelayError(
      'USAGE',
      `${path} has no auth.apiKeys.file; add "auth: { apiKeys: { file: keys.yaml } }" to it or pass --keys-file FILE`,
    );
  }
  return config.cluster ? { file, cluster: config.cluster } : { file };
}

/**
 * Revoked in the cluster's Redis, or an error that says the keys file was left alone. A Redis that
 * froze may still apply what it was sent, so the error does not claim nothing happened: running the
 * command again is harmless.
 */
async function revokeAcrossCluster(cluster: ClusterConfig, ids: readonly string[]): Promise<void> {
  const redis = new RedisLink(cluster.redis, cluster.keyPrefix, silentLogger);
  try {
    await redis.connect(2_000);
    await publishRevocations(redis, ids);
  } catch (error) {
    // Not close(): it would wait for the replies of a frozen Redis.
    redis.client.destroy();
    throw new RelayError(
      'CLUSTER_UNAVAILABLE',
      `could not reach the cluster's Redis (${errorText(error)}): the keys file is unchanged and the replicas may not have the revocation; run the command again when Redis answers`,
    );
  }
  await redis.close();
}

/** A bare number would mean milliseconds to parseDuration; for a key's lifetime that is never meant. */
function parseLifetime(text: string): number {
  const ms = /[a-z]\s*$/i.test(text) ? parseDuration(text) : undefined;
  if (ms === undefined || ms <= 0) {
    throw new RelayError(
      'USAGE',
      `--expires wants a duration with a unit, e.g. 90d, 12h, 30m (got "${printable(text)}")`,
    );
  }
  return ms;
}

/** citty keeps only the last value of a repeated option, so `--group a --group b` is read from argv. */
function repeatedOption(rawArgs: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let index = 0; index < rawArgs.length; index++) {
    const word = rawArgs[index];
    if (word === '--') break;
    if (word === `--${name}`) {
      const value = rawArgs[index + 1];
      if (value === undefined || value.startsWith('--'))
        throw new RelayError('USAGE', `--${name} needs a value`);
      values.push(value);
      index++;
    } else if (word?.startsWith(`--${name}=`)) {
      values.push(word.slice(name.length + 3));
    }
  }
  return values;
}

function formatTable(keys: readonly KeySummary[]): string {
  const rows = [
    ['ID', 'USER', 'GROUPS', 'CREATED', 'EXPIRES', 'EXPIRED', 'LAST USED'],
    ...keys.map((key) => [
      key.id,
      key.user,
      key.groups.join(',') || '-',
      shortTime(key.created),
      key.expires ? shortTime(key.expires) : 'never',
      key.expired ? 'yes' : 'no',
      key.lastUsed ? shortTime(key.lastUsed) : 'never',
    ]),
  ];
  return alignColumns(rows);
}

/** "2025-11-24T20:03:00.000Z" → "2025-11-24 20:03Z": minutes are enough for a list. */
function shortTime(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)}Z`;
}

/** User input shown back in an error: control characters escaped, length bounded. */
function printable(text: string): string {
  return JSON.stringify(text.slice(0, 40)).slice(1, -1);
}
