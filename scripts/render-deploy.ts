// Renders deploy/nginx-site.conf and deploy/mcp-relay.service from deploy/relay.yaml, the sample config,
// as `mcp-relay deploy print` would on a machine where it is /etc/mcp-relay/relay.yaml and mcp-relay is
// installed with `npm install -g`. test/deploy-unit.test.ts checks the shipped files equal this.
// Usage: node scripts/render-deploy.ts (writes the files)

import { readFileSync, writeFileSync } from 'node:fs';
import { parseConfigText } from '../src/config/load.ts';
import { renderNginxSite } from '../src/deploy/nginx-site.ts';
import { renderSystemdUnit } from '../src/deploy/systemd-unit.ts';

const DEPLOY = new URL('../deploy/', import.meta.url);

/** Where the sample config is installed, and the node and mcp-relay of a Debian node with npm -g. */
export const SAMPLE_CONFIG_PATH = '/etc/mcp-relay/relay.yaml';
export const SAMPLE_EXEC = ['/usr/bin/node', '/usr/local/lib/node_modules/mcp-relay/bin/mcp-relay.js'];

/** The shipped files by name under deploy/, as rendered from the sample config now. */
export function renderedDeployFiles(): Record<string, string> {
  const config = parseConfigText(readFileSync(new URL('relay.yaml', DEPLOY), 'utf8'), SAMPLE_CONFIG_PATH, {});
  return {
    'nginx-site.conf': renderNginxSite(config).text,
    'mcp-relay.service': renderSystemdUnit(config, { configPath: SAMPLE_CONFIG_PATH, exec: SAMPLE_EXEC })
      .text,
  };
}

if (import.meta.main) {
  for (const [name, text] of Object.entries(renderedDeployFiles())) {
    writeFileSync(new URL(name, DEPLOY), text);
    process.stdout.write(`wrote deploy/${name}\n`);
  }
}
