// A pino logger whose lines a test can read back, for log lines a user would see.

import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../src/log.ts';

export function capturingLogger(): { log: Logger; lines: () => string } {
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString('utf8');
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines: () => text };
}
