// `mcp-relay doctor <url>`: checks, on a colleague's PC, each step from here to the gateway and the
// server behind it with the flags `connect` takes, one line per step with a fix for each failure.

import { defineCommand } from 'citty';
import { parseDuration } from '../../config/units.ts';
import { type DoctorStep, runDoctor } from '../../connect/doctor.ts';
import { resolveConnectSetup } from '../../connect/options.ts';
import { RelayError } from '../../errors.ts';
import { ioFrom } from '../io.ts';
import { connectionArgs, connectionFlags } from './connect.ts';

const MARK: Record<DoctorStep['status'], string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', skip: 'skip' };

export const doctorCommand = defineCommand({
  meta: {
    name: 'doctor',
    description:
      'Check the way to a gateway step by step (proxy, DNS, TCP, TLS, clock, credential, MCP) and say how to fix what fails',
  },
  args: {
    ...connectionArgs,
    timeout: {
      type: 'string',
      default: '5s',
      valueHint: 'DURATION',
      description: 'how long each step may take',
    },
    json: { type: 'boolean', default: false, description: 'print the steps as JSON' },
  },
  async run({ args, rawArgs, data }): Promise<number> {
    const io = ioFrom(data);
    const timeoutMs = parseDuration(args.timeout);
    if (timeoutMs === undefined || timeoutMs <= 0)
      throw new RelayError('USAGE', `--timeout "${args.timeout}" is not a duration (use e.g. 5s)`);
    const setup = resolveConnectSetup(
      {
        ...connectionFlags(args, rawArgs),
        timeout: args.timeout,
        // A doctor never opens a browser: without a token it reports what the gateway asks for.
        oauth: { enabled: false },
      },
      io.env,
    );
    if (setup.url.protocol === 'ws:' || setup.url.protocol === 'wss:') {
      throw new RelayError(
        'USAGE',
        'doctor walks the HTTP(S) path to a gateway; for a ws:// or wss:// URL run "mcp-relay connect --verbose" instead',
      );
    }
    if (!args.json) io.stdout.write(`mcp-relay doctor ${setup.url.href}\n`);
    const steps = await runDoctor({ setup, timeoutMs }, (step) => {
      if (args.json) return;
      io.stdout.write(`  ${MARK[step.status]}  ${step.step.padEnd(8)}${step.detail}\n`);
      if (step.fix !== undefined) io.stdout.write(`${' '.repeat(16)}fix: ${step.fix}\n`);
    });
    const failed = steps.filter((step) => step.status === 'fail').length;
    if (args.json)
      io.stdout.write(`${JSON.stringify({ url: setup.url.href, ok: failed === 0, steps }, null, 2)}\n`);
    else
      io.stdout.write(
        failed === 0 ? 'All steps passed.\n' : `${failed} step${failed === 1 ? '' : 's'} failed.\n`,
      );
    return failed === 0 ? 0 : 1;
  },
});
