// The edges this layout promises, checked on the source: the HTTP edge knows nothing of the pool,
// backends or policy, and authentication takes plain values rather than node:http objects.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

/** Every module specifier a folder's files import (static imports and re-exports). */
function importsOf(folder: string): Array<{ file: string; specifier: string }> {
  const found: Array<{ file: string; specifier: string }> = [];
  for (const file of readdirSync(join(SRC, folder), { recursive: true, encoding: 'utf8' })) {
    if (!file.endsWith('.ts')) continue;
    const text = readFileSync(join(SRC, folder, file), 'utf8');
    for (const match of text.matchAll(/^(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]/gm)) {
      found.push({ file: `${folder}/${file}`, specifier: match[1] ?? '' });
    }
  }
  return found;
}

function offending(folder: string, forbidden: RegExp): string[] {
  return importsOf(folder)
    .filter(({ specifier }) => forbidden.test(specifier))
    .map(({ file, specifier }) => `${file} → ${specifier}`);
}

describe('edge imports', () => {
  it('finds imports at all (the check itself works)', () => {
    assert.ok(importsOf('http').some(({ specifier }) => specifier === 'node:http'));
  });

  it('http/ imports neither the pool (router/, mux/), backends, policy, sessions’ insides, transports nor the assembly', () => {
    assert.deepEqual(
      offending(
        'http',
        /^\.\.\/(router|mux|backends|policy|transports|gateway)\/|^\.\.\/sessions\/(?!types\.ts$)/,
      ),
      [],
    );
  });

  it('transports/ reach sessions, not the pool or backends', () => {
    assert.deepEqual(offending('transports', /\/(router|mux|backends|policy|gateway)\//), []);
  });

  it('auth/ does not import node:http', () => {
    assert.deepEqual(offending('auth', /^node:https?$/), []);
  });
});
