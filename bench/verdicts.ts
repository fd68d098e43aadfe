// The verdict table of docs/benchmarks.md: each goal of issue 4, the figures it is judged on, and whether
// it is met. Reported, never asserted: the numbers depend on the machine.

import { type Figures, formatValue, perExtraSession, problemsOf, ratio, table } from './figures.ts';
import type { Profile } from './options.ts';

export function verdictSection(figures: Figures, profile: Profile): string {
  const v = (id: string, key: string) => figures.value(id, key);
  const rows: string[][] = [];
  const add = (goal: string, measured: string, pass: boolean | undefined) =>
    rows.push([goal, measured, pass === undefined ? 'not measured' : pass ? '✅ met' : '❌ not met']);
  const known = (...values: number[]) => values.every(Number.isFinite);

  const gw = v('relay-shared', 'tput.lean.50.cpu.gateway');
  const bare = v('bare-http', 'tput.lean.50.cpu.gateway');
  add(
    'gateway CPU per call ≤ 1.5× the bare node:http server’s (shared, lean driver, 50 sessions)',
    known(gw, bare) ? `${formatValue(gw, 'us')} vs ${formatValue(bare, 'us')}: ${ratio(gw, bare)}` : '—',
    known(gw, bare) ? gw <= 1.5 * bare : undefined,
  );

  const shared = v('relay-shared', 'tput.lean.50.rps');
  const ceiling = Math.max(
    ...profile.concurrency.lean.map((n) => v('stdio', `tput.lean.${n}.rps`)).filter(Number.isFinite),
  );
  add(
    'shared at 50 sessions (lean) ≥ 90 % of one backend’s calls/s over direct stdio (its best level)',
    known(shared, ceiling)
      ? `${formatValue(shared, 'rps')} vs ${formatValue(ceiling, 'rps')}: ${((shared / ceiling) * 100).toFixed(0)} % (bare node:http alone, no backend: ${formatValue(v('bare-http', 'tput.lean.50.rps'), 'rps')})`
      : '—',
    known(shared, ceiling) ? shared >= 0.9 * ceiling : undefined,
  );
  const proxy = v('mcp-proxy-streamable', 'tput.lean.50.rps');
  add(
    'shared at 50 sessions (lean) ≥ 2× mcp-proxy driven the same way',
    known(shared, proxy)
      ? `${formatValue(shared, 'rps')} vs ${formatValue(proxy, 'rps')}: ${ratio(shared, proxy)}`
      : '—',
    known(shared, proxy) ? shared >= 2 * proxy : undefined,
  );

  const sdkP50 = v('relay-shared', 'seq.sdk.p50');
  const fetchP50 = v('bare-http', 'seq.fetch.p50');
  const stdioP50 = v('stdio', 'seq.sdk.p50');
  const bound = 1.2 * (fetchP50 + stdioP50);
  add(
    'sequential p50 with the SDK client ≤ 1.2 × (bare HTTP p50 with fetch + direct stdio p50 with the SDK)',
    known(sdkP50, bound)
      ? `${formatValue(sdkP50, 'us')} vs 1.2 × (${formatValue(fetchP50, 'us')} + ${formatValue(stdioP50, 'us')}) = ${formatValue(bound, 'us')} (the SDK client against bare node:http alone: ${formatValue(v('bare-http', 'seq.sdk.p50'), 'us')})`
      : '—',
    known(sdkP50, bound) ? sdkP50 <= bound : undefined,
  );

  const perSession = perExtraSession(figures, 'relay-shared', profile.memoryLevels);
  add(
    'under 0.2 MB RSS per extra session in shared mode',
    perSession === undefined ? '—' : `${formatValue(perSession, 'bytes')} per session`,
    perSession === undefined ? undefined : perSession < 0.2 * 1_000_000,
  );

  const top = v('relay-shared', 'burst.sessions');
  const topProblems =
    top >= 1_000
      ? v('relay-shared', `burst.${top}.failed`) +
        v('relay-shared', `burst.${top}.wrong`) +
        v('relay-shared', `mem.open.${top}.failed`)
      : Number.NaN;
  add(
    '1,000 concurrent sessions (shared) with no errors',
    Number.isFinite(topProblems)
      ? `${top.toLocaleString('en-US')} sessions open, one call on each at once: ${topProblems} errors`
      : '—',
    Number.isFinite(topProblems) ? topProblems === 0 : undefined,
  );

  const relays = figures.specs.filter((spec) => spec.group !== 'peer');
  const wrong = relays.reduce((sum, spec) => sum + problemsOf(figures, spec.id).wrong, 0);
  const failed = relays.reduce((sum, spec) => sum + problemsOf(figures, spec.id).failed, 0);
  add(
    'zero wrong replies (mcp-relay in every mode, and the floors)',
    `${wrong} wrong replies, ${failed} failed calls`,
    relays.some((spec) => spec.group === 'relay') ? wrong === 0 : undefined,
  );
  return [
    '## Goals of issue 4 (reported, not asserted)',
    '',
    table(['goal', 'measured', 'verdict'], rows, [0, 1, 2]),
  ].join('\n');
}
