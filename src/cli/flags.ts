// Flags citty cannot express: a repeatable flag (`--header a --header b`) keeps only its last value
// there, so commands read every value from raw argv here.

import { RelayError } from '../errors.ts';

/**
 * The values of a repeatable flag (`--header v`, `--header=v`, `-H v`) from raw argv, since the CLI
 * parser keeps only the last one. Stops at `--`.
 */
export function collectRepeatedFlag(rawArgs: readonly string[], long: string, short?: string): string[] {
  const values: string[] = [];
  for (let index = 0; index < rawArgs.length; index++) {
    const arg = rawArgs[index] ?? '';
    if (arg === '--') break;
    if (arg === long || (short !== undefined && arg === short)) {
      const next = rawArgs[index + 1];
      if (next === undefined) throw new RelayError('USAGE', `${arg} needs a value`);
      values.push(next);
      index++;
    } else if (arg.startsWith(`${long}=`)) {
      values.push(arg.slice(long.length + 1));
    }
  }
  return values;
}
