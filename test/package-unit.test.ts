// The package's own claims: `main` and `exports` name what the build emits from src/index.ts, and the
// library entry's names change only on purpose (this list is the public API; edit it with care).

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as library from '../src/index.ts';

const ROOT = join(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  main: string;
  types: string;
  exports: Record<string, string | Record<string, string>>;
};

/** dist/x.js (or .d.ts) → src/x.ts: the source the build turns into that file. */
const sourceOf = (built: string) => built.replace(/^\.?\/?dist\//, 'src/').replace(/\.(d\.ts|js)$/, '.ts');

describe('the package entry', () => {
  it('exports these names, and only these', () => {
    assert.deepEqual(Object.keys(library).sort(), [
      'RelayError',
      'VERSION',
      'buildConfig',
      'createBridge',
      'createGateway',
      'createLogger',
      'loadConfigFile',
    ]);
  });

  it('points main, types and exports at files built from sources that exist', () => {
    const targets = [pkg.main, pkg.types, ...Object.values(pkg.exports['.'] as Record<string, string>)];
    for (const target of targets)
      assert.ok(existsSync(join(ROOT, sourceOf(target))), `${target} ← ${sourceOf(target)}`);
    assert.equal(sourceOf(pkg.main), 'src/index.ts');
  });
});
