// The config keys of identity-based policy, rate limits and the audit log (README "Policy", "Audit"),
// kept apart from schema.ts so that file stays a readable overview; schema.ts spreads these in.

import { z } from 'zod';
import { globProblem } from '../util/glob.ts';
import { parseSize } from './units.ts';

/** One glob pattern (see util/glob.ts for the syntax); a bad one is a config error with its line. */
const pattern = z.string().superRefine((value, ctx) => {
  const problem = globProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: `bad pattern ${JSON.stringify(value)}: ${problem}` });
});

const patterns = z.array(pattern);

/** A user or group name as the identity carries it (API keys, token claims, certificates). */
const principal = z.string().min(1).max(256);

/** What one group may additionally see (`allow`) or must not see (`deny`). */
const groupFilterSchema = z.strictObject({
  allow: patterns.default([]),
  deny: patterns.default([]),
});

/**
 * A filter over one kind of item (tool names, prompt names, resource URIs). Precedence: a `deny` that
 * applies to the user (the server's or one of the user's groups') always wins; otherwise the item
 * is visible when it matches `allow` (absent = everything) or the `allow` of one of the user's groups.
 */
export const itemFilterSchema = z.strictObject({
  allow: patterns.optional(),
  deny: patterns.default([]),
  groups: z.record(principal, groupFilterSchema).default({}),
});

/**
 * An `allowedOrigins` entry: an origin as browsers send it in `Origin` (scheme://host[:port]), or "*".
 * Case, a trailing "/" and a default port are normalized away; a path or query is an error, since
 * such an entry could never match.
 */
export const allowedOrigin = z.string().transform((value, ctx) => {
  if (value === '*') return value;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  const bare = url && url.pathname === '/' && !url.search && !url.hash && !url.username && !url.password;
  if (!url || !bare || url.origin === 'null' || !value.includes('://')) {
    ctx.addIssue({
      code: 'custom',
      message: `${JSON.stringify(value)} is not an origin: write scheme://host[:port], e.g. https://app.example.com`,
    });
    return z.NEVER;
  }
  return url.origin;
});

/** Keys each entry of `servers` gains. */
export const serverPolicyKeys = {
  /** Who may use the server; absent = every authenticated user. */
  allow: z
    .strictObject({
      users: z.array(principal).default([]),
      groups: z.array(principal).default([]),
    })
    .optional(),
  tools: itemFilterSchema.optional(),
  prompts: itemFilterSchema.optional(),
  resources: itemFilterSchema.optional(),
  /** JSON-RPC requests per minute to this server from all users together; absent = no limit. */
  requestsPerMinute: z.number().int().positive().optional(),
};

/** Keys `limits` gains. */
export const limitPolicyKeys = {
  /** JSON-RPC requests per minute of one user, across all servers; absent = no limit. */
  requestsPerMinute: z.number().int().positive().optional(),
};

// The same "4MiB" reading as schema.ts's size; repeated here because importing schema.ts from the
// file it imports would be a cycle.
const size = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseSize(value);
  if (bytes === undefined || bytes < 1_024) {
    ctx.addIssue({
      code: 'custom',
      message: `"${String(value)}" is not a size of at least 1KiB (use e.g. 10MiB)`,
    });
    return z.NEVER;
  }
  return bytes;
});

/** The audit log: one JSON line per session start/end and per tools/call. */
export const auditSchema = z
  .strictObject({
    /** The file to append to (mode 0600), or "-" for stderr. */
    file: z.string().min(1).optional(),
    /** Write to stderr instead of a file (same as file: "-"). */
    stderr: z.boolean().default(false),
    /** The file is rotated (audit.jsonl → audit.jsonl.1 …) before it would grow past this. */
    maxSize: size.default(10 * 1_048_576),
    /** Rotated files kept besides the current one; older ones are deleted. */
    keep: z.number().int().min(0).max(1_000).default(5),
    /** Whether tools.call lines carry the call's arguments (they may hold personal data). */
    includeArguments: z.boolean().default(false),
  })
  .superRefine((audit, ctx) => {
    if (audit.file === undefined && !audit.stderr) {
      ctx.addIssue({
        code: 'custom',
        message: 'audit needs a destination: file: audit.jsonl, or stderr: true',
      });
    } else if (audit.stderr && audit.file !== undefined && audit.file !== '-') {
      ctx.addIssue({
        code: 'custom',
        path: ['stderr'],
        message: 'choose one destination: audit.file or audit.stderr',
      });
    }
  });

export type ItemFilterConfig = z.output<typeof itemFilterSchema>;
export type AuditConfig = z.output<typeof auditSchema>;
