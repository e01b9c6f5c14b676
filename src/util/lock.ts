import { open, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { mkdirp } from './fs.js';
import { InternalError, UserError } from '../errors.js';
import { setTimeout as sleep } from 'node:timers/promises';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The callers in this process waiting for or holding each lock, chained: they take turns. */
const inProcess = new Map<string, Promise<void>>();

/**
 * A lock file holding the owner's PID, for work two builds may start at once on the same cache entry
 * (a resumable partial download). A lock whose owner is dead is taken over. Waits up to `timeoutMs`.
 * Callers in the same process (bundles of one build fetching the same file) take turns before that.
 */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, timeoutMs = 30 * 60_000): Promise<T> {
  const previous = inProcess.get(lockPath) ?? Promise.resolve();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const mine = previous.then(() => gate);
  inProcess.set(lockPath, mine);
  await previous;
  try {
    return await withLockFile(lockPath, fn, timeoutMs);
  } finally {
    release();
    if (inProcess.get(lockPath) === mine) inProcess.delete(lockPath);
  }
}

async function withLockFile<T>(lockPath: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  await mkdirp(dirname(lockPath));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fh = await open(lockPath, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
      if (!owner || !alive(owner) || owner === process.pid) {
        if (owner === process.pid) throw new InternalError(`lock ${lockPath} is already held by this process`);
        await rm(lockPath, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw UserError.runtime('cache', `timed out waiting for ${lockPath} (held by PID ${owner})`, `another build uses this cache entry: wait for PID ${owner} to finish, or end it and run again`);
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockPath, { force: true });
  }
}
