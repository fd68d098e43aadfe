// Structured JSON logs to stderr. stdout stays free for protocol (the connect bridge, ssh-entry).

import { type Logger, pino } from 'pino';
import { escapeUnicodeLineBreaks } from './util/json-lines.ts';

export type { Logger };

/** Paths whose values are secrets; pino replaces them before a line is written. */
const REDACT = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'token',
  'apiKey',
  'key',
  '*.authorization',
  '*.token',
  '*.apiKey',
];

export function createLogger(level = 'info', name = 'mcp-relay'): Logger {
  return pino(
    {
      name,
      level,
      redact: { paths: REDACT, censor: '[redacted]' },
      // Lines quote clients and backends (their stderr, names they sent): one record stays one line.
      hooks: { streamWrite: escapeUnicodeLineBreaks },
    },
    pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that writes nothing: for library callers and tests that do not care. */
export const silentLogger: Logger = pino({ level: 'silent' });
