// PM2 process file for the mcp-relay gateway: `pm2 start deploy/ecosystem.config.cjs`, then
// `pm2 save && pm2 startup` to start it at boot. Prefer the systemd unit (deploy/mcp-relay.service),
// which also sandboxes the gateway and its servers; PM2 suits a host that already runs apps with it.
module.exports = {
  apps: [
    {
      name: 'mcp-relay',
      // The bin script of `npm install -g mcp-relay`, run by the node PM2 finds (or set interpreter).
      script: '/usr/local/lib/node_modules/mcp-relay/bin/mcp-relay.js',
      args: ['serve', '--config', '/etc/mcp-relay/relay.yaml'],
      // One process: sessions live in its memory, so cluster mode or instances > 1 would split them.
      exec_mode: 'fork',
      instances: 1,
      // The gateway logs JSON lines to stderr; PM2 keeps them in ~/.pm2/logs.
      merge_logs: true,
      autorestart: true,
      restart_delay: 2000,
      // On stop PM2 sends SIGINT: the gateway finishes calls in flight (shutdownTimeout, 10 s by default)
      // and stops its servers itself, ending within shutdownTimeout + 2 s; kill_timeout must outlast that.
      kill_timeout: 15000,
      // The signal to the gateway alone, not its whole tree: the servers must outlive the drain.
      treekill: false,
      // Never restart on file changes: the gateway re-reads relay.yaml itself (`pm2 sendSignal SIGHUP
      // mcp-relay` re-reads it at once), keeping every session.
      watch: false,
      env: {
        NODE_ENV: 'production',
      },
    },
  ],
};
