// `mcp-relay ssh-entry`: the forced command sshd runs for keys from `ssh authorize`; serves the server
// the client names over this process's stdio until it ends or a signal arrives.

import { defineCommand } from 'citty';
import { runSshEntry } from '../../ssh/entry.ts';
import { collectRepeatedFlag } from '../flags.ts';
import { ioFrom } from '../io.ts';

export const sshEntryCommand = defineCommand({
  meta: {
    name: 'ssh-entry',
    description:
      'The forced command sshd runs for keys from "ssh authorize"; serves the server named by the client',
  },
  args: {
    config: { type: 'string', description: 'the relay config', required: true, valueHint: 'FILE' },
    user: { type: 'string', description: 'the user this key belongs to', required: true },
    group: { type: 'string', description: 'a group of the user (repeatable)', valueHint: 'NAME' },
  },
  async run({ args, rawArgs, data }): Promise<number> {
    const io = ioFrom(data);
    const input = io.stdin ?? process.stdin;
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    const signals = ['SIGTERM', 'SIGHUP', 'SIGINT'] as const;
    for (const name of signals) process.once(name, onSignal);
    try {
      return await runSshEntry({
        configPath: args.config,
        user: args.user,
        groups: collectRepeatedFlag(rawArgs, '--group'),
        env: io.env,
        input,
        output: io.stdout,
        errors: io.stderr,
        signal: stop.signal,
      });
    } finally {
      for (const name of signals) process.off(name, onSignal);
      // stdin may still be open (a refusal, a signal); it must not keep the process alive.
      input.destroy();
    }
  },
});
