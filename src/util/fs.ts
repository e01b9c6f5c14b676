import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, open } from 'node:fs/promises';
import { createWriteStream, type WriteStream } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { finished } from 'node:stream/promises';

/** A temp path beside `finalPath` that never looks like a finished output (hidden, `.partial` suffix). */
export function tempPathFor(finalPath: string): string {
  return join(dirname(finalPath), `.${basename(finalPath)}.${process.pid}.${randomBytes(4).toString('hex')}.partial`);
}

/**
 * Runs `write` against a temp file next to `finalPath`, fsyncs it and renames it into place only when
 * `write` succeeded. On failure the temp file is removed and nothing named `finalPath` appears.
 */
export async function writeAtomically<T>(finalPath: string, write: (out: WriteStream, tempPath: string) => Promise<T>): Promise<T> {
  await mkdir(dirname(finalPath), { recursive: true });
  const tmp = tempPathFor(finalPath);
  const out = createWriteStream(tmp, { flags: 'wx' });
  try {
    const result = await write(out, tmp);
    out.end();
    await finished(out);
    const fh = await open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, finalPath);
    return result;
  } catch (e) {
    // A write still in flight fails with ERR_STREAM_DESTROYED; the caller's error `e` is what counts.
    out.on('error', () => {});
    out.destroy();
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Renames `tmp` to `finalPath` after creating the parent directory. */
export async function commitFile(tmp: string, finalPath: string): Promise<void> {
  await mkdir(dirname(finalPath), { recursive: true });
  await rename(tmp, finalPath);
}
