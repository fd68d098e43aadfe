// The layout's rules, checked on the source: dependencies point one way (cli → gateway/connect →
// transports/http → sessions → mux → backends → protocol), auth and policy stay free of node:http,
// and no module imports itself back through a cycle. A rule learned in review lives here, not in prose.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

const SRC = join(import.meta.dirname, '../src');

/** Every .ts file under src/, as a path relative to it. */
function sourceFiles(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [relative(SRC, path)] : [];
  });
}

const IMPORT = /^\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;
const DYNAMIC = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

interface Edge {
  from: string;
  to: string;
  /** `import type`: erased at build time, so it adds no load-time edge, but still a design dependency. */
  typeOnly: boolean;
}

/** The imports of one file: src-relative paths for local modules, bare names for packages and node:. */
function importsOf(file: string): Edge[] {
  const text = readFileSync(join(SRC, file), 'utf8');
  const edges: Edge[] = [];
  const add = (specifier: string, typeOnly: boolean) => {
    const to = specifier.startsWith('.') ? relative(SRC, resolve(SRC, dirname(file), specifier)) : specifier;
    edges.push({ from: file, to, typeOnly });
  };
  for (const match of text.matchAll(IMPORT)) add(match[2] as string, match[1] !== undefined);
  for (const match of text.matchAll(DYNAMIC)) add(match[1] as string, false);
  return edges;
}

const files = sourceFiles();
const edges = files.flatMap(importsOf);
const folderOf = (path: string) => (path.includes('/') ? (path.split('/')[0] as string) : path);

/** Imports from files in `from` folders to modules matching `to`, type-only ones included. */
function violations(from: readonly string[], to: (target: string) => boolean): string[] {
  return edges
    .filter((edge) => from.includes(folderOf(edge.from)) && to(edge.to))
    .map((edge) => `${edge.from} → ${edge.to}`);
}

const inFolders =
  (...folders: string[]) =>
  (target: string) =>
    folders.includes(folderOf(target)) && target.includes('/');

describe('layout: the direction of imports', () => {
  it('finds the source it checks', () => {
    assert.ok(files.length > 50, `${files.length} files`);
    assert.ok(edges.some((edge) => edge.to.startsWith('mux/')));
  });

  it('http/ knows no front, pool, backend, policy or assembly, and sessions only by their contracts', () => {
    assert.deepEqual(
      violations(
        ['http'],
        (target) =>
          inFolders('mux', 'backends', 'policy', 'transports', 'gateway')(target) ||
          (target.startsWith('sessions/') && target !== 'sessions/types.ts'),
      ),
      [],
    );
  });

  it('transports/ reach the sessions, not the pool, backends, policy or the assembly', () => {
    assert.deepEqual(violations(['transports'], inFolders('mux', 'backends', 'policy', 'gateway')), []);
  });

  it('auth/ and policy/ are pure over typed inputs: no node:http, nothing of the HTTP front', () => {
    assert.deepEqual(
      violations(
        ['auth', 'policy'],
        (target) => /^node:https?$/.test(target) || inFolders('http', 'transports')(target),
      ),
      [],
    );
  });

  it('mux/ knows sessions by their contracts, not the Session class; backends/ knows nothing above it', () => {
    assert.deepEqual(
      violations(['mux'], (target) => target === 'sessions/session.ts'),
      [],
    );
    assert.deepEqual(
      violations(['backends'], inFolders('mux', 'sessions', 'http', 'transports', 'gateway', 'policy')),
      [],
    );
  });

  it('admin/ and observe/ read the pool and sessions only through the types of their copies', () => {
    const valueEdges = edges.filter(
      (edge) =>
        ['admin', 'observe'].includes(folderOf(edge.from)) &&
        !edge.typeOnly &&
        inFolders('mux', 'backends', 'sessions', 'policy', 'transports', 'gateway')(edge.to),
    );
    assert.deepEqual(
      valueEdges.map((edge) => `${edge.from} → ${edge.to}`),
      [],
    );
    assert.deepEqual(violations(['admin', 'observe'], inFolders('cli', 'connect', 'ssh')), []);
  });

  it('protocol/ is the bottom layer: it imports no other folder of the project', () => {
    assert.deepEqual(
      violations(['protocol'], (target) => target.includes('/') && !target.startsWith('protocol/')),
      [],
    );
  });

  it('config/ does not import policy/; claude/ does not load the connect bridge', () => {
    assert.deepEqual(violations(['config'], inFolders('policy')), []);
    assert.deepEqual(
      violations(['claude'], (target) => target.startsWith('connect/') && target !== 'connect/token-env.ts'),
      [],
    );
  });

  it('deploy/ renders text from a config: it reaches nothing that runs the gateway', () => {
    assert.deepEqual(
      violations(['deploy'], (target) => target.includes('/') && !/^(config|deploy|util)\//.test(target)),
      [],
    );
  });

  it('has no import cycles (value imports)', () => {
    const graph = new Map<string, string[]>();
    for (const edge of edges) {
      if (edge.typeOnly || !edge.to.endsWith('.ts')) continue;
      graph.set(edge.from, [...(graph.get(edge.from) ?? []), edge.to]);
    }
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (file: string) => {
      state.set(file, 'open');
      stack.push(file);
      for (const next of graph.get(file) ?? []) {
        if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next].join(' → '));
        else if (!state.has(next)) visit(next);
      }
      stack.pop();
      state.set(file, 'done');
    };
    for (const file of files) if (!state.has(file)) visit(file);
    assert.deepEqual(cycles, []);
  });
});
