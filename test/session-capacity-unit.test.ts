// A backend pool at its cap is a result of SessionManager.create, not an error the front must know:
// no session is made, and the user's count stays free.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildConfig } from '../src/config/load.ts';
import { silentLogger } from '../src/log.ts';
import { SessionManager } from '../src/sessions/manager.ts';
import type { Identity, SessionGates } from '../src/sessions/types.ts';

const config = buildConfig({
  listen: { host: '127.0.0.1', port: 0 },
  servers: { s: { command: 'true' } },
  limits: { sessionsPerUser: 1 },
});
const alice: Identity = { user: 'alice', groups: [], method: 'none', credential: 'none' };
/** Gates that admit everything: only the pool's answer decides here. */
const open: SessionGates = {
  admitSession: () => undefined,
  admitStream: () => undefined,
  open: () => ({ admit: () => ({ track: undefined }), passes: () => true }),
};

describe('SessionManager.create at capacity', () => {
  it('returns the capacity result with the pool’s message and keeps no session', async () => {
    const sessions = new SessionManager(
      config,
      silentLogger,
      () => ({
        ok: false,
        reason: 'capacity',
        message: 'server "s" already runs its maximum of 1 instances',
      }),
      open,
    );
    try {
      const first = await sessions.create('s', alice);
      assert.deepEqual(first, {
        ok: false,
        reason: 'capacity',
        message: 'server "s" already runs its maximum of 1 instances',
      });
      assert.equal(sessions.size, 0);
      // The refused session does not count against sessionsPerUser (1): a second try is refused the same way, not as too many sessions.
      const second = await sessions.create('s', alice);
      assert.equal(second.ok === false && second.reason, 'capacity');
    } finally {
      await sessions.closeAll('test over');
    }
  });

  it('still throws a fault of the pool, and keeps no session', async () => {
    const sessions = new SessionManager(
      config,
      silentLogger,
      () => {
        throw new Error('spawn failed');
      },
      open,
    );
    try {
      await assert.rejects(sessions.create('s', alice), /spawn failed/);
      assert.equal(sessions.size, 0);
    } finally {
      await sessions.closeAll('test over');
    }
  });
});
