// `mcp-relay deploy print nginx|haproxy|systemd`: the nginx site, a cluster's haproxy.cfg and the systemd
// unit for a config, on stdout, so `deploy print nginx > /etc/nginx/sites-available/mcp-relay` installs it;
// hints go to stderr.

import { defineCommand } from 'citty';
import { thisMachineLauncher } from '../../claude/launcher.ts';
import { readRegistry } from '../../cluster/cluster.ts';
import { RedisLink } from '../../cluster/redis-link.ts';
import { loadConfigFile } from '../../config/load.ts';
import type { ClusterConfig } from '../../config/schema.ts';
import { renderHaproxyCfg } from '../../deploy/haproxy-cfg.ts';
import { renderNginxSite } from '../../deploy/nginx-site.ts';
import { renderSystemdUnit } from '../../deploy/systemd-unit.ts';
import { RelayError } from '../../errors.ts';
import { silentLogger } from '../../log.ts';
import { absolutePathIn, ioFrom } from '../io.ts';

const TARGETS = ['nginx', 'haproxy', 'systemd'] as const;

const printCommand = defineCommand({
  meta: {
    name: 'print',
    description:
      "Print the nginx site, a cluster's haproxy.cfg or the systemd unit for a config (deploy/ holds a sample)",
  },
  args: {
    what: { type: 'positional', required: true, description: 'nginx | haproxy | systemd' },
    config: { type: 'string', description: 'config file', default: 'relay.yaml', valueHint: 'FILE' },
    cert: {
      type: 'string',
      description:
        "nginx: the certificate chain for publicUrl's host; haproxy: one PEM with the chain then the key (default: a placeholder path)",
      valueHint: 'FILE',
    },
    key: { type: 'string', description: 'nginx: its private key (with --cert)', valueHint: 'FILE' },
  },
  async run({ args, data }) {
    const io = ioFrom(data);
    const what = args.what;
    if (!(TARGETS as readonly string[]).includes(what))
      throw new RelayError('USAGE', `deploy print takes nginx, haproxy or systemd, not "${what}"`);
    if (what === 'haproxy' && args.key !== undefined)
      throw new RelayError(
        'USAGE',
        'haproxy reads the certificate and its key from one PEM file: cat fullchain.pem privkey.pem > mcp.pem, then give --cert mcp.pem (no --key)',
      );
    if (what === 'nginx' && (args.cert === undefined) !== (args.key === undefined))
      throw new RelayError('USAGE', '--cert and --key go together');
    if (what === 'systemd' && (args.cert !== undefined || args.key !== undefined))
      throw new RelayError('USAGE', '--cert and --key are for the nginx site and haproxy (TLS ends there)');
    const { config, path } = loadConfigFile(absolutePathIn(io, args.config), io.env);
    if (what === 'haproxy') {
      if (config.cluster === undefined)
        throw new RelayError(
          'USAGE',
          'deploy print haproxy renders the load balancer of a cluster, and the config has no cluster section: for one gateway use `deploy print nginx`, or add a cluster section',
        );
      const cfg = renderHaproxyCfg(config, {
        pem: args.cert === undefined ? undefined : absolutePathIn(io, args.cert),
        replicas: await liveReplicas(config.cluster),
      });
      io.stdout.write(cfg.text);
      for (const warning of cfg.warnings) io.stderr.write(`note: ${warning}\n`);
      return 0;
    }
    if (what === 'nginx') {
      const site = renderNginxSite(config, {
        cert: args.cert === undefined ? undefined : absolutePathIn(io, args.cert),
        key: args.key === undefined ? undefined : absolutePathIn(io, args.key),
        replicas: config.cluster && (await liveReplicas(config.cluster)),
      });
      io.stdout.write(site.text);
      for (const warning of site.warnings) io.stderr.write(`note: ${warning}\n`);
      return 0;
    }
    const launcher = thisMachineLauncher();
    const unit = renderSystemdUnit(config, {
      configPath: path ?? absolutePathIn(io, args.config),
      exec: [launcher.nodePath, launcher.binPath],
    });
    io.stdout.write(unit.text);
    for (const warning of unit.warnings) io.stderr.write(`note: ${warning}\n`);
    return 0;
  },
});

/** With a cluster section: the replicas alive now, as Redis knows them (the load balancer routes to them). */
async function liveReplicas(cluster: ClusterConfig): Promise<{ id: string; address: string }[]> {
  const redis = new RedisLink(cluster.redis, cluster.keyPrefix, silentLogger);
  try {
    await redis.connect();
    const members = (await readRegistry(redis, cluster.secret)).filter(
      (member) => member.alive && member.address !== '',
    );
    if (members.length === 0)
      throw new RelayError('CONFIG_INVALID', 'no replica of this cluster is alive: start them first');
    return members.map((member) => ({ id: member.replica, address: member.address }));
  } finally {
    await redis.close();
  }
}

export const deployCommand = defineCommand({
  meta: {
    name: 'deploy',
    description: 'Run the gateway as a service: print its nginx site, haproxy.cfg or systemd unit',
  },
  subCommands: { print: printCommand },
});
