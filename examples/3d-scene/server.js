#!/usr/bin/env node
// Entry point: the 3D scene MCP server on stdio, with its live browser viewer; owns startup and shutdown.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createSceneMcpServer } from './mcp.js';
import { Scene } from './scene.js';
import { parsePublicUrl } from './viewer-access.js';
import { startViewer } from './viewer-server.js';

// stdout carries only MCP messages: everything else goes to stderr.
const log = (line) => process.stderr.write(`3d-scene ${line}\n`);
// A parent that stops reading stderr must not crash the server; the log is best effort.
process.stderr.on('error', () => undefined);

const scene = new Scene(process.env.SCENE_TITLE || '3D Scene');
keepAcrossRestarts(scene, process.env.MCP_RELAY_STATE_DIR);

/** @type {{ url: string, close: () => Promise<void> } | undefined} */
let viewer;
let viewerError = 'it has not started';
try {
  viewer = await startViewer(scene, {
    host: '127.0.0.1',
    port: parsePort(process.env.APP_PORT),
    publicUrl: parsePublicUrl(process.env.APP_PUBLIC_URL),
    key: process.env.MCP_RELAY_APP_KEY || undefined,
    title: scene.title,
    user: process.env.MCP_RELAY_USER || undefined,
    log,
  });
  // Not the page's address: that holds the viewer's key, and logs are read by more eyes than the user's.
  log(`viewer listening on ${viewer.address} (get_viewer_url gives the page's address)`);
} catch (error) {
  viewerError = error instanceof Error ? error.message : String(error);
  log(`viewer unavailable, MCP tools still work: ${viewerError}`);
}

const mcp = createSceneMcpServer(scene, {
  viewerStatus: () => (viewer ? { url: viewer.url } : { error: viewerError }),
  log,
});

let shuttingDown = false;
async function shutdown(reason) {
  if (shuttingDown) return;
  shuttingDown = true;
  log(`shutting down: ${reason}`);
  await Promise.allSettled([viewer?.close(), mcp.close()]);
  // Nothing should be left holding the event loop; if something is, it must not keep a finished server alive.
  setTimeout(() => process.exit(0), 1000).unref();
}

process.stdin.on('end', () => void shutdown('stdin closed'));
process.stdout.on('error', (error) => void shutdown(`stdout: ${error.message}`));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
mcp.server.onclose = () => void shutdown('MCP connection closed');

await mcp.connect(new StdioServerTransport());

/** APP_PORT: unset, empty or 0 picks a free port. */
function parsePort(value) {
  const port = Number(value || 0);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new Error(`APP_PORT must be a port number from 0 to 65535, not ${JSON.stringify(value)}`);
  }
  return port;
}

/**
 * Behind mcp-relay with `stateDir`, each instance has a folder of its own that its next process gets
 * again (a restart for new code, a crash): the scene is written there at each change, whole and
 * atomically, and read back at start. Without it the scene lives as long as the process.
 * @param {Scene} scene @param {string | undefined} dir
 */
function keepAcrossRestarts(scene, dir) {
  if (!dir) return;
  const file = join(dir, 'scene.json');
  try {
    if (existsSync(file)) {
      const saved = JSON.parse(readFileSync(file, 'utf8'));
      const restored = scene.restore(saved.objects, saved.nextId);
      log(`restored ${restored} objects from ${file}`);
    }
  } catch (error) {
    log(`could not restore the scene from ${file}: ${error instanceof Error ? error.message : error}`);
  }
  scene.on('change', (state) => {
    try {
      // Its own temporary file: during a restart the old process may save too.
      const temporary = `${file}.${process.pid}.tmp`;
      writeFileSync(temporary, JSON.stringify({ ...state, nextId: scene.nextId }));
      renameSync(temporary, file);
    } catch (error) {
      log(`could not save the scene to ${file}: ${error instanceof Error ? error.message : error}`);
    }
  });
}
