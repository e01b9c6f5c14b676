import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { mkdirp } from '../util/fs.js';
import { sha256 } from '../util/hash.js';

// The small files of the binary cache (`./fetch.ts`): URL index records, checksum files, extraction records.

/** Cache file name of a URL or member name. */
export const key = (s: string) => sha256(s);

export async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

export async function readJson<T>(p: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(p, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export async function writeJsonAtomic(p: string, v: unknown): Promise<void> {
  await writeFileAtomic(p, JSON.stringify(v));
}

/** Writes `text` to a temp file beside `p`, then renames it; a failed write leaves no temp file. */
export async function writeFileAtomic(p: string, text: string): Promise<void> {
  await mkdirp(dirname(p));
  // Unique per call: bundles of one build may write the same entry at once.
  const tmp = `${p}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, text);
    await rename(tmp, p);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
