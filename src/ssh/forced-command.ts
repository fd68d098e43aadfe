// The forced command `ssh authorize` writes into authorized_keys, and reading it back. sshd runs it
// with the account's shell and a minimal environment, inside command="…": so absolute paths only,
// every word single-quoted, and values that could break either quoting refused outright.

import { isAbsolute } from 'node:path';
import { isPrincipalName, PRINCIPAL_NAME_RULE } from '../auth/principal-name.ts';
import { RelayError } from '../errors.ts';

export interface ForcedCommand {
  /** The node binary, absolute. */
  readonly nodePath: string;
  /** bin/mcp-relay.js, absolute. */
  readonly binPath: string;
  /** relay.yaml, absolute. */
  readonly configPath: string;
  readonly user: string;
  readonly groups: readonly string[];
}

/** Characters that would end a single-quoted shell word or the double-quoted option, or hide in a log. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused.
const UNQUOTABLE = /['"\\\u0000-\u001f\u007f]/;

export function renderForcedCommand(command: ForcedCommand): string {
  for (const [what, path] of [
    ['the node path', command.nodePath],
    ['the mcp-relay path', command.binPath],
    ['the config path', command.configPath],
  ] as const) {
    if (!isAbsolute(path)) throw usage(`${what} must be absolute in a forced command: ${path}`);
    if (UNQUOTABLE.test(path)) {
      throw usage(`${what} contains a quote, backslash or control character; move it to a plain path`);
    }
  }
  checkPrincipal('user', command.user);
  for (const group of command.groups) checkPrincipal('group', group);
  const words = [
    quote(command.nodePath),
    quote(command.binPath),
    'ssh-entry',
    '--config',
    quote(command.configPath),
    '--user',
    quote(command.user),
    ...command.groups.flatMap((group) => ['--group', quote(group)]),
  ];
  return words.join(' ');
}

/** The parts of a forced command this module wrote; undefined for any other command. */
export function parseForcedCommand(text: string): ForcedCommand | undefined {
  const words = [...text.matchAll(/'([^']*)'|(\S+)/g)].map((match) => match[1] ?? match[2] ?? '');
  const [nodePath, binPath, verb, ...rest] = words;
  if (nodePath === undefined || binPath === undefined || verb !== 'ssh-entry') return undefined;
  let configPath: string | undefined;
  let user: string | undefined;
  const groups: string[] = [];
  for (let index = 0; index < rest.length; index += 2) {
    const value = rest[index + 1];
    if (value === undefined) return undefined;
    if (rest[index] === '--config') configPath = value;
    else if (rest[index] === '--user') user = value;
    else if (rest[index] === '--group') groups.push(value);
    else return undefined;
  }
  if (configPath === undefined || user === undefined) return undefined;
  return { nodePath, binPath, configPath, user, groups };
}

export function checkPrincipal(what: 'user' | 'group', name: string): void {
  // A leading dash would read as an option of ssh-entry.
  if (!isPrincipalName(name) || name.startsWith('-')) {
    throw usage(`the ${what} name must be ${PRINCIPAL_NAME_RULE} (not starting with -)`);
  }
}

function quote(word: string): string {
  return `'${word}'`;
}

function usage(message: string): RelayError {
  return new RelayError('USAGE', message);
}
