// `mcp-relay cluster status`: the replicas of a cluster as Redis knows them (alive or not, sessions and
// backends, version and config hash, so drift between replicas shows) and which replica owns each
// per-user and single-copy shared backend. Reads the config's cluster section; joins nothing.

import { defineCommand } from 'citty';
import { readOwners, readRegistry } from '../../cluster/cluster.ts';
import { RedisLink } from '../../cluster/redis-link.ts';
import { loadConfigFile } from '../../config/load.ts';
import { RelayError } from '../../errors.ts';
import { silentLogger } from '../../log.ts';
import { absolutePathIn, ioFrom } from '../io.ts';
import { alignColumns } from '../table.ts';

const statusCommand = defineCommand({
  meta: {
    name: 'status',
    description: 'Show the replicas, their load and health, and where single-owner backends run',
  },
  args: {
    config: {
      type: 'string',
      description: 'config file (its cluster section)',
      default: 'relay.yaml',
      valueHint: 'FILE',
    },
    json: { type: 'boolean', default: false, description: 'print it as JSON' },
  },
  async run({ args, data }): Promise<number> {
    const io = ioFrom(data);
    const { config } = loadConfigFile(absolutePathIn(io, args.config), io.env);
    if (!config.cluster)
      throw new RelayError(
        'USAGE',
        `${args.config} has no cluster section: there is one gateway, see mcp-relay status`,
      );
    const redis = new RedisLink(config.cluster.redis, config.cluster.keyPrefix, silentLogger);
    try {
      await redis.connect();
      const members = await readRegistry(redis, config.cluster.secret);
      const owners = await readOwners(redis);
      if (args.json) {
        io.stdout.write(`${JSON.stringify({ replicas: members, owners }, null, 2)}\n`);
        return 0;
      }
      const hashes = new Set(members.filter((member) => member.alive).map((member) => member.configHash));
      const rows = [['REPLICA', 'STATE', 'ADDRESS', 'SESSIONS', 'BACKENDS', 'VERSION', 'CONFIG', 'UP SINCE']];
      for (const member of members)
        rows.push([
          member.replica,
          member.signed ? (member.alive ? 'alive' : 'gone') : 'unsigned',
          member.address || '-',
          String(member.sessions),
          String(member.backends),
          member.version,
          member.configHash,
          new Date(member.startedAt).toISOString(),
        ]);
      io.stdout.write(`${alignColumns(rows)}\n`);
      if (hashes.size > 1)
        io.stdout.write(
          `\nConfig drift: the live replicas run ${hashes.size} different configs (the CONFIG column).\n`,
        );
      const unsigned = members.filter((member) => !member.signed).map((member) => member.replica);
      if (unsigned.length > 0)
        io.stdout.write(
          `\nUnsigned: ${unsigned.join(', ')} — not signed with this config's cluster.secret (a replica with another secret, or an entry written by someone with access to Redis); no replica forwards to them.\n`,
        );
      const placed = Object.entries(owners);
      if (placed.length > 0) {
        io.stdout.write('\n');
        io.stdout.write(
          `${alignColumns([['BACKEND (server:user)', 'OWNER'], ...placed.map(([key, replica]) => [key, replica])])}\n`,
        );
      }
      return 0;
    } finally {
      await redis.close();
    }
  },
});

export const clusterCommand = defineCommand({
  meta: { name: 'cluster', description: 'Several replicas on Redis: see what runs where' },
  subCommands: { status: statusCommand },
});
