// `mcp-relay ssh authorize|revoke|list`: the keys sshd lets in, each pinned to ssh-entry (the forced
// command itself is ssh-entry.ts, so listing keys does not load the bridge and the backends).

import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { type ArgsDef, defineCommand } from 'citty';
import { isBuilt, thisMachineLauncher } from '../../claude/launcher.ts';
import { RelayError } from '../../errors.ts';
import { type AuthorizedEntry, authorizeKey, listAuthorized, revokeKeys } from '../../ssh/authorized-keys.ts';
import { parsePublicKeyFile } from '../../ssh/public-key.ts';
import { collectRepeatedFlag } from '../flags.ts';
import { absolutePathIn, type CliIo, ioFrom, pathIn } from '../io.ts';
import { alignColumns } from '../table.ts';

const fileArgs = {
  'authorized-keys': {
    type: 'string',
    description:
      "the authorized_keys file to edit (default: this account's ~/.ssh/authorized_keys; ~/.ssh is made, 0700, when missing)",
    valueHint: 'PATH',
  },
} satisfies ArgsDef;

const authorizeCommand = defineCommand({
  meta: {
    name: 'authorize',
    description:
      'Let a public key in over SSH, pinned to `mcp-relay ssh-entry` for one user (restrict, forced command)',
  },
  args: {
    user: { type: 'string', description: 'the mcp-relay user this key logs in as', required: true },
    'key-file': {
      type: 'string',
      description: "the user's public key (.pub)",
      required: true,
      valueHint: 'FILE',
    },
    group: { type: 'string', description: 'a group the user belongs to (repeatable)', valueHint: 'NAME' },
    config: {
      type: 'string',
      description: 'the relay config ssh-entry will read',
      default: './relay.yaml',
      valueHint: 'FILE',
    },
    ...fileArgs,
  },
  async run({ args, rawArgs, data }) {
    const io = ioFrom(data);
    const configPath = absolutePathIn(io, args.config);
    // Loaded now so that a key never points at a broken config. The service's ${VAR}s may be unset
    // in this shell; whether ssh-entry gets them is checked when it runs. (ssh/entry.ts brings the
    // bridge and the backends with it: only authorize loads it.)
    const { loadConfigDespiteUnsetVars } = await import('../../ssh/entry.ts');
    loadConfigDespiteUnsetVars(configPath, io.env);
    let text: string;
    try {
      text = await readFile(pathIn(io, args['key-file']), 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      throw new RelayError('AUTHORIZED_KEYS', `cannot read the key file ${args['key-file']}: ${code}`);
    }
    const key = parsePublicKeyFile(text, args['key-file']);
    const file = authorizedKeysPath(args['authorized-keys'], io);
    const launcher = thisMachineLauncher();
    if (launcher.kind !== 'node') throw new Error('unreachable: this installation runs under node');
    const { nodePath, binPath } = launcher;
    const outcome = await authorizeKey(file, key, {
      nodePath,
      binPath,
      configPath,
      user: args.user,
      groups: [...new Set(collectRepeatedFlag(rawArgs, '--group'))],
    });
    const said = { added: 'added', replaced: 'updated', unchanged: 'already present, unchanged:' }[outcome];
    io.stdout.write(`${said} ${key.type} ${key.fingerprint} for ${args.user} in ${file}\n`);
    if (!isBuilt()) {
      io.stderr.write(
        'warning: this checkout is not built; run "npm run build" or ssh-entry will not start.\n',
      );
    }
    return 0;
  },
});

const revokeCommand = defineCommand({
  meta: { name: 'revoke', description: "Remove a user's SSH keys (all, or the one with --fingerprint)" },
  args: {
    user: { type: 'string', description: 'the user whose keys go', required: true },
    fingerprint: {
      type: 'string',
      description: 'only this key (SHA256:…, as ssh list shows)',
      valueHint: 'FP',
    },
    ...fileArgs,
  },
  async run({ args, data }) {
    const io = ioFrom(data);
    const file = authorizedKeysPath(args['authorized-keys'], io);
    const removed = await revokeKeys(file, args.user, args.fingerprint);
    if (removed === 0) {
      const which = args.fingerprint ? `key ${args.fingerprint} of ${args.user}` : `keys of ${args.user}`;
      throw new RelayError('AUTHORIZED_KEYS', `no ${which} in ${file}`);
    }
    io.stdout.write(`removed ${removed} key(s) of ${args.user} from ${file}\n`);
    return 0;
  },
});

const listCommand = defineCommand({
  meta: { name: 'list', description: 'List the SSH keys mcp-relay authorized' },
  args: {
    json: { type: 'boolean', description: 'print JSON instead of a table', default: false },
    ...fileArgs,
  },
  async run({ args, data }) {
    const io = ioFrom(data);
    const file = authorizedKeysPath(args['authorized-keys'], io);
    const entries = await listAuthorized(file);
    if (args.json) io.stdout.write(`${JSON.stringify(entries.map(summary), null, 2)}\n`);
    else if (entries.length === 0) io.stderr.write(`no keys written by mcp-relay in ${file}\n`);
    else io.stdout.write(`${table(entries)}\n`);
    return 0;
  },
});

export const sshCommand = defineCommand({
  meta: { name: 'ssh', description: 'SSH mode: manage the keys sshd lets in (authorize, revoke, list)' },
  subCommands: { authorize: authorizeCommand, revoke: revokeCommand, list: listCommand },
});

function authorizedKeysPath(given: string | undefined, io: CliIo): string {
  return given !== undefined && given !== ''
    ? absolutePathIn(io, given)
    : join(io.env.HOME || homedir(), '.ssh', 'authorized_keys');
}

function summary(entry: AuthorizedEntry) {
  return {
    user: entry.user,
    groups: entry.groups,
    type: entry.key.type,
    fingerprint: entry.key.fingerprint,
    comment: entry.key.comment,
    config: entry.configPath,
  };
}

function table(entries: readonly AuthorizedEntry[]): string {
  const rows = [
    ['USER', 'GROUPS', 'TYPE', 'FINGERPRINT', 'COMMENT'],
    ...entries.map((entry) => [
      entry.user,
      entry.groups.join(',') || '-',
      entry.key.type,
      entry.key.fingerprint,
      entry.key.comment || '-',
    ]),
  ];
  return alignColumns(rows);
}
