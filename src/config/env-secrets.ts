// The `${VAR}`s of relay.yaml leave the gateway's environment once read. A backend runs as the
// gateway's account unless `servers.<name>.user` says otherwise, and could read every other server's
// secrets from /proc/<gateway pid>/environ. The values stay here, module-private, so that a reload
// still resolves the file's `${VAR}`s and envPassthrough still finds its variables.

import { errorText } from '../errors.ts';
import { eraseFromInitialEnvironment } from '../util/initial-environ.ts';

const taken = new Map<string, string>();

/** The value `${name}` stands for: from `env`, else one taken out of the gateway's environment; never empty. */
export function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name] || taken.get(name);
  return value === '' ? undefined : value;
}

export interface TakenVariables {
  /** The names moved out of process.env by this call. */
  names: string[];
  /** Why they could not be wiped from /proc/<pid>/environ as well (then still readable there). */
  eraseError?: string;
}

/**
 * Moves the named variables from process.env into this module, and wipes them from the process's
 * initial environment block too (what /proc/<pid>/environ shows, whatever process.env says).
 */
export function takeFromEnvironment(names: Iterable<string>): TakenVariables {
  const moved: string[] = [];
  for (const name of names) {
    const value = process.env[name];
    if (value === undefined) continue;
    taken.set(name, value);
    delete process.env[name];
    moved.push(name);
  }
  try {
    eraseFromInitialEnvironment(new Set(moved));
    return { names: moved };
  } catch (error) {
    return { names: moved, eraseError: errorText(error) };
  }
}

/** The gateway's environment for backends to inherit from: process.env plus the variables taken out of it. */
export function environmentWithTaken(): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(taken), ...process.env };
}
