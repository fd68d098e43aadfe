// A Claude Desktop extension (MCP Bundle, `.mcpb`) of the `connect` bridge for one gateway URL: the
// manifest, the built files `connect` loads and the packages they import, and optionally the office CA.
// The API key is not in it: Claude Desktop asks for it at install and keeps it in the OS keychain.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_TOKEN_ENV } from '../connect/token-env.ts';
import { RelayError } from '../errors.ts';
import type { ZipEntry } from '../util/zip.ts';
import { checkEntryName, checkGatewayUrl } from './entry.ts';

// Both src/claude/ and dist/claude/ sit two levels below the package root.
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** What Claude Desktop runs: the installed entry, with `connect` as its first argument. */
const ENTRY_POINT = 'bin/mcp-relay.js';
/** main.js loads each command on use; of those, the bundle carries only the bridge. */
const BRIDGE_COMMAND = /^\.\/commands\/connect\.js$/;
const CA_FILE = 'office-ca.pem';
/** The manifest version Claude Desktop has read longest; `mcpb validate` checks it. */
const MANIFEST_VERSION = '0.3';

export interface BundleOptions {
  /** The gateway's MCP endpoint: the default of the URL the user may change at install. */
  readonly url: string;
  /** The extension's name as Claude Desktop shows it. */
  readonly name: string;
  /** The CA (PEM) that signed the gateway's certificate; the bridge trusts it. */
  readonly ca?: { readonly pem: Buffer } | undefined;
}

export interface Bundle {
  readonly manifest: Record<string, unknown>;
  readonly files: readonly ZipEntry[];
}

/** Everything the `.mcpb` holds, read from this installation's built files (`npm run build` first in a checkout). */
export function bridgeBundle(options: BundleOptions): Bundle {
  const url = checkGatewayUrl(options.url);
  checkEntryName(options.name);
  if (
    options.ca !== undefined &&
    !options.ca.pem.toString('latin1').includes('-----BEGIN CERTIFICATE-----')
  ) {
    throw new RelayError('USAGE', 'the --ca file holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  }
  if (!existsSync(join(PACKAGE_ROOT, 'dist', 'cli', 'main.js'))) {
    throw new RelayError('USAGE', 'this checkout is not built; run "npm run build" first');
  }
  const version = readPackageJson(PACKAGE_ROOT).version;
  const manifest = bridgeManifest(url, options.name, version, options.ca !== undefined);
  const files: ZipEntry[] = [
    { path: 'manifest.json', data: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`) },
    // dist/version.js reads the version here; "module" makes node load dist/ as ES modules.
    {
      path: 'package.json',
      data: Buffer.from(
        `${JSON.stringify({ name: 'mcp-relay', version, private: true, type: 'module', license: 'MIT' }, null, 2)}\n`,
      ),
    },
  ];
  const { modules, packages } = bridgeModules();
  for (const module of modules) files.push(fileEntry(PACKAGE_ROOT, module, module));
  for (const [name, dir] of packages) {
    for (const file of packageFiles(dir)) files.push(fileEntry(dir, file, `node_modules/${name}/${file}`));
  }
  if (options.ca !== undefined) files.push({ path: CA_FILE, data: options.ca.pem });
  return { manifest, files };
}

function bridgeManifest(
  url: string,
  name: string,
  version: string,
  withCa: boolean,
): Record<string, unknown> {
  return {
    manifest_version: MANIFEST_VERSION,
    name: slug(name),
    display_name: name,
    version,
    description: `The MCP server "${name}" of the office gateway, through mcp-relay's bridge.`,
    long_description: `Runs \`mcp-relay connect\` (stdio ⇄ HTTPS) against ${url}. Your API key stays in the system keychain.`,
    author: { name: 'mcp-relay' },
    license: 'MIT',
    server: {
      type: 'node',
      entry_point: ENTRY_POINT,
      mcp_config: {
        command: 'node',
        args: [
          `\${__dirname}/${ENTRY_POINT}`,
          'connect',
          // biome-ignore lint/suspicious/noTemplateCurlyInString: Claude Desktop's own placeholder, filled at launch.
          '${user_config.gateway_url}',
          ...(withCa ? ['--ca', `\${__dirname}/${CA_FILE}`] : []),
        ],
        // Claude Desktop fills this from the keychain; `connect` reads the key from it.
        // biome-ignore lint/suspicious/noTemplateCurlyInString: Claude Desktop's own placeholder, filled at launch.
        env: { [DEFAULT_TOKEN_ENV]: '${user_config.api_key}' },
      },
    },
    user_config: {
      gateway_url: {
        type: 'string',
        title: 'Gateway URL',
        description: "The MCP server's address on the office gateway.",
        default: url,
        required: true,
      },
      api_key: {
        type: 'string',
        title: 'API key',
        description: 'Your key (mcpr_…), from "mcp-relay keys create" on the office server.',
        sensitive: true,
        required: true,
      },
    },
    compatibility: {
      platforms: ['darwin', 'win32', 'linux'],
      runtimes: { node: readPackageJson(PACKAGE_ROOT).engines?.node ?? '>=22' },
    },
  };
}

/**
 * The built modules `bin/mcp-relay.js connect` loads (package-relative paths) and the packages they
 * import (name → folder), packages' own dependencies included: found by following the imports, so
 * the bundle changes as the bridge's code does, and carries no gateway code or gateway-only package.
 */
function bridgeModules(): { modules: string[]; packages: Map<string, string> } {
  const modules = new Set<string>();
  const packages = new Map<string, string>();
  const entry = join(PACKAGE_ROOT, ENTRY_POINT);
  const queue = [entry];
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    const path = relative(PACKAGE_ROOT, file).split(sep).join('/');
    if (modules.has(path)) continue;
    modules.add(path);
    for (const { specifier, dynamic } of importsOf(readFileSync(file, 'utf8'))) {
      if (specifier.startsWith('node:')) continue;
      if (specifier.startsWith('.')) {
        // The entry loads the CLI lazily (after its Node version check); of the CLI's lazy commands, only connect.
        if (!dynamic || file === entry || BRIDGE_COMMAND.test(specifier))
          queue.push(join(dirname(file), specifier));
        continue;
      }
      addPackage(packageName(specifier), dirname(file), packages);
    }
  }
  return { modules: [...modules].sort(), packages };
}

// tsc's output: one `import … from '…'` (or `export … from`) per statement, and `import('…')` for lazy loads.
const STATIC_IMPORT = /^\s*(?:import|export)\s+(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;
const DYNAMIC_IMPORT = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(text: string): { specifier: string; dynamic: boolean }[] {
  return [
    ...[...text.matchAll(STATIC_IMPORT)].map((match) => ({ specifier: match[1] as string, dynamic: false })),
    ...[...text.matchAll(DYNAMIC_IMPORT)].map((match) => ({ specifier: match[1] as string, dynamic: true })),
  ];
}

/** `undici/x` → `undici`, `@scope/pkg/x` → `@scope/pkg`. */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return (specifier.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)).join('/');
}

/** Finds `name` as node does from `fromDir` (node_modules folders upwards), then its dependencies from there. */
function addPackage(name: string, fromDir: string, packages: Map<string, string>): void {
  if (packages.has(name)) return;
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) {
      packages.set(name, candidate);
      for (const dependency of Object.keys(readPackageJson(candidate).dependencies ?? {}))
        addPackage(dependency, candidate, packages);
      return;
    }
    if (dirname(dir) === dir)
      throw new RelayError('USAGE', `the bridge needs the package ${name}, which is not installed`);
  }
}

/** A package's files that run: no type declarations, docs, source maps or nested node_modules (dependencies sit flat). */
function packageFiles(dir: string, under = ''): string[] {
  return readdirSync(join(dir, under), { withFileTypes: true }).flatMap((entry) => {
    const path = under === '' ? entry.name : `${under}/${entry.name}`;
    if (entry.isDirectory()) {
      return ['node_modules', 'docs', 'types', 'test', '.github'].includes(entry.name)
        ? []
        : packageFiles(dir, path);
    }
    if (!entry.isFile() || /\.(d\.[mc]?ts|map|md|markdown)$/i.test(entry.name)) return [];
    return [path];
  });
}

function fileEntry(root: string, file: string, path: string): ZipEntry {
  const full = join(root, file);
  return { path, data: readFileSync(full), mode: statSync(full).mode & 0o777 };
}

function readPackageJson(dir: string): {
  version: string;
  dependencies?: Record<string, string>;
  engines?: { node?: string };
} {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
    version: string;
    dependencies?: Record<string, string>;
    engines?: { node?: string };
  };
}

/** A machine name for the manifest: lower case, letters, digits and single dashes. */
function slug(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'mcp-relay'
  );
}
