// A real redis-server on 127.0.0.1 for the cluster tests: its own port, no persistence, a child of
// the test (stopped by its pid), and the faults a replica must survive: killed and started again on
// the same port, or frozen (SIGSTOP: connected, silent) and thawed.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { RedisLink } from '../../src/cluster/redis-link.ts';
import { silentLogger } from '../../src/log.ts';
import { freePort } from './ports.ts';

export const REDIS_SERVER = '/usr/bin/redis-server';

export interface TestRedis {
  readonly port: number;
  readonly url: string;
  /** Kills the server (SIGKILL: an outage, not a shutdown) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty (no persistence). */
  start(): Promise<void>;
  /** Freezes it: connections stay open, nothing is answered. */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

/** Why redis-server cannot run here, or undefined when it can. */
export function redisUnavailable(): string | undefined {
  return existsSync(REDIS_SERVER) ? undefined : `${REDIS_SERVER} is missing (Debian package redis-server)`;
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  let paused = false;

  async function start(): Promise<void> {
    const started = spawn(
      REDIS_SERVER,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
      ],
      { stdio: 'ignore' },
    );
    child = started;
    await accepting(port, started);
  }

  async function stop(): Promise<void> {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGKILL');
    await exited;
    paused = false;
  }

  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    pause() {
      child?.kill('SIGSTOP');
      paused = true;
    },
    resume() {
      child?.kill('SIGCONT');
      paused = false;
    },
    async close() {
      if (paused) child?.kill('SIGCONT');
      await stop();
    },
  };
}

/** A connected link with `prefix`, as a replica holds one. */
export async function linkTo(redis: TestRedis, prefix = 'test:'): Promise<RedisLink> {
  const link = new RedisLink(redis.url, prefix, silentLogger);
  await link.connect();
  return link;
}

/** Resolves once the port takes connections; rejects if the server exits first or after 5 s. */
async function accepting(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port} within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
