// `npm run test:fast` and `npm run test:e2e`: which test files each runs. A file named `*-unit.test.ts`
// spawns nothing heavy (units, in-process HTTP, the CLI through main) and is fast; every other
// `*.test.ts` starts real processes (backends, the CLI, sshd, nginx, a browser) and is end-to-end.
// Usage: node scripts/run-tests.ts fast|e2e|all [more node --test flags]

import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

const FAST = /-unit\.test\.ts$/;
const [set, ...flags] = process.argv.slice(2);
if (set === 'fast' || set === 'e2e' || set === 'all') {
  const files = readdirSync('test', { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.test.ts'))
    .filter((file) => set === 'all' || FAST.test(file) === (set === 'fast'))
    .map((file) => `test/${file}`)
    .sort();
  const run = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...flags, ...files], {
    stdio: 'inherit',
  });
  process.exitCode = run.status ?? 1;
} else {
  process.stderr.write('usage: node scripts/run-tests.ts fast|e2e|all [node --test flags]\n');
  process.exitCode = 2;
}
