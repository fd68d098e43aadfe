// Replaces a file so readers see the old content or the new, never half of either: a temp file in
// the same folder (same filesystem, so rename is atomic), flushed, then renamed over the target.

import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Who should own a replaced file, when that is not the writer (root editing a service account's file). */
export interface FileOwner {
  uid: number;
  gid: number;
}

/** Writes `data` to `path` atomically with permissions `mode` (default owner-only: these files hold secrets or hashes). */
export async function writeFileAtomic(
  path: string,
  data: string,
  mode = 0o600,
  owner?: FileOwner,
): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(data, 'utf8');
      // The umask only ever removes bits; chmod makes the mode exact whatever the umask.
      await handle.chmod(mode);
      // Before the rename, so the file never appears with the wrong owner (sshd reads it as its owner).
      if (owner) await handle.chown(owner.uid, owner.gid);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await renameWithRetry(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** Windows refuses to replace a file another process has open for a moment (EPERM/EBUSY); POSIX never does. */
async function renameWithRetry(from: string, to: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await rename(from, to);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const transient = code === 'EPERM' || code === 'EBUSY' || code === 'EACCES';
      if (process.platform !== 'win32' || !transient || attempt >= 10) throw error;
      await sleep(50 * (attempt + 1));
    }
  }
}
