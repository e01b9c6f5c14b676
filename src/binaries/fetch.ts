import { createReadStream } from 'node:fs';
import { rename, rm, stat, mkdtemp, chmod } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { UserError, fsError } from '../errors.js';
import type { PlannedBinary } from '../plan/plan.js';
import type { ProgressSink } from '../progress/sink.js';
import { silentSink } from '../progress/sink.js';
import { ContentMismatchError, hashingTap, SHA256_HEX, sha256File } from '../util/hash.js';
import { withFileLock } from '../util/lock.js';
import { mkdirp } from '../util/fs.js';
import { debug, safeUrl } from '../util/debug.js';
import { fmtBytes } from '../util/format.js';
import { exists, key, readJson, writeJsonAtomic } from './cache-files.js';
import { expectedDigest } from './checksum.js';
import { download } from './download.js';

export { parseChecksumFile } from './checksum.js';

/**
 * Binary downloads: verified against the manifest's checksum source, stored in the content-addressed
 * cache (`<cache>/blobs/sha256/<hex>`, shared with image blobs), resumable (`<cache>/partial/`, HTTP
 * Range), safe with two builds at once (a lock per URL), and never refetched once cached. The checksum
 * source is read in `./checksum.ts`, the download itself is `./download.ts`.
 */
export interface FetchOptions {
  cacheDir: string;
  progress?: ProgressSink;
  signal?: AbortSignal;
}

export interface FetchedBinary {
  binary: PlannedBinary;
  /** Cache path of the verified download. */
  downloadPath: string;
  /** SHA-256 of the download (what was verified, possibly via SHA-512). */
  downloadSha256: string;
  /** The file that goes into the bundle: the download, or the member extracted from it. */
  file: string;
  sha256: string;
  size: number;
  /** True when nothing was downloaded. */
  cached: boolean;
}

interface UrlIndexEntry {
  url: string;
  sha256: string;
  size: number;
  expected: { algorithm: string; digest: string };
}

export async function fetchBinary(b: PlannedBinary, opts: FetchOptions): Promise<FetchedBinary> {
  try {
    return await fetchOnce(b, opts);
  } catch (e) {
    // A cached download that did not hash to its digest while it was extracted: evicted, fetched again.
    if (!(e instanceof ContentMismatchError)) throw fsError(e, opts.cacheDir, `caching ${b.name} in`, opts.cacheDir);
    await rm(e.file, { force: true });
    return fetchOnce(b, opts);
  }
}

/**
 * After the bundle writer found `f.file` not matching its digest (a corrupted or tampered cache entry):
 * evicts it (the download, or the extracted member and its record) and fetches the binary again. The
 * download is verified against the manifest's checksum source as on any fetch; an extracted member is
 * extracted again from a download hashed in the same pass.
 */
export async function refetchBinary(f: FetchedBinary, opts: FetchOptions): Promise<FetchedBinary> {
  await rm(f.file, { force: true });
  if (f.file !== f.downloadPath) await rm(`${f.file}.json`, { force: true });
  return fetchBinary(f.binary, opts);
}

async function fetchOnce(b: PlannedBinary, opts: FetchOptions): Promise<FetchedBinary> {
  const progress = opts.progress ?? silentSink;
  const expected = await expectedDigest(b, opts);
  const blobDir = join(opts.cacheDir, 'blobs', 'sha256');
  const indexPath = join(opts.cacheDir, 'index', 'urls', `${key(`${b.upstreamUrl}\n${expected.algorithm}:${expected.digest}`)}.json`);

  // A record that contradicts the digest it was stored for (sha256 sources name the download's own digest) is ignored.
  const usable = async (e: UrlIndexEntry | undefined): Promise<boolean> =>
    e !== undefined && SHA256_HEX.test(e.sha256) && (expected.algorithm !== 'sha256' || e.sha256 === expected.digest) && (await exists(join(blobDir, e.sha256)));
  let entry = await readJson<UrlIndexEntry>(indexPath);
  let cached = true;
  if (!entry || !(await usable(entry))) {
    cached = false;
    entry = await withFileLock(join(opts.cacheDir, 'partial', `${key(b.url)}.lock`), async () => {
      // Another build (or bundle of this build) may have finished it while we waited for the lock.
      const again = await readJson<UrlIndexEntry>(indexPath);
      if (again && (await usable(again))) {
        cached = true;
        return again;
      }
      const got = await download(b, expected, opts, progress);
      await mkdirp(blobDir);
      await rename(got.partial, join(blobDir, got.sha256));
      const e: UrlIndexEntry = { url: b.upstreamUrl, sha256: got.sha256, size: got.size, expected };
      await writeJsonAtomic(indexPath, e);
      return e;
    });
  }
  if (cached) debug('cache', `hit: ${b.name} ${safeUrl(b.upstreamUrl)} (sha256:${entry.sha256})`);
  const downloadPath = join(blobDir, entry.sha256);
  if (!b.extract) {
    progress.done(b.name, `${fmtBytes(entry.size)}${cached ? ', cached' : ''}`);
    return { binary: b, downloadPath, downloadSha256: entry.sha256, file: downloadPath, sha256: entry.sha256, size: entry.size, cached };
  }
  const extracted = await extractMember(downloadPath, entry.sha256, b, opts.cacheDir);
  progress.done(b.name, `${fmtBytes(extracted.size)} from ${b.url.split('/').pop()}${cached ? ', cached' : ''}`);
  return { binary: b, downloadPath, downloadSha256: entry.sha256, file: extracted.file, sha256: extracted.sha256, size: extracted.size, cached };
}

/** Extracts one member of a verified .tar.gz into `<cache>/extracted/<archive-sha256>/`. */
async function extractMember(archive: string, archiveSha: string, b: PlannedBinary, cacheDir: string): Promise<{ file: string; sha256: string; size: number }> {
  const member = b.extract ?? '';
  const finalPath = join(cacheDir, 'extracted', archiveSha, key(member));
  const meta = await readJson<{ sha256: string; size: number }>(`${finalPath}.json`);
  if (meta && (await exists(finalPath))) return { file: finalPath, ...meta };
  await mkdirp(join(cacheDir, 'extracted'));
  const tmp = await mkdtemp(join(cacheDir, 'extracted', `.x-${process.pid}-`));
  try {
    const names: string[] = [];
    const norm = (p: string) => p.replace(/^\.\//, '');
    // The cached download is hashed in the same pass as it is extracted (it is trusted by name only).
    const hashing = hashingTap();
    try {
      await pipeline(createReadStream(archive, { highWaterMark: 1 << 20 }), hashing.stream, tar.x({ cwd: tmp, filter: (p) => (names.push(norm(p)), norm(p) === norm(member)) }));
    } catch (e) {
      // A changed download may not even unpack: then it is hashed whole, and a mismatch is what counts.
      const whole = await sha256File(archive);
      if (whole !== archiveSha) throw new ContentMismatchError(archive, archiveSha, whole, (await stat(archive)).size);
      throw e;
    }
    const actual = hashing.hex();
    if (actual !== archiveSha) throw new ContentMismatchError(archive, archiveSha, actual, hashing.bytes());
    const out = join(tmp, norm(member));
    if (!(await exists(out))) {
      throw UserError.runtime('manifest', `${b.name}: ${b.url} has no member '${member}'`, `it has: ${names.slice(0, 8).join(', ')}${names.length > 8 ? ', …' : ''}; fix 'extract' in the manifest`);
    }
    await chmod(out, 0o644);
    const digest = await sha256File(out);
    const size = (await stat(out)).size;
    await mkdirp(dirname(finalPath));
    await rename(out, finalPath);
    await writeJsonAtomic(`${finalPath}.json`, { sha256: digest, size });
    return { file: finalPath, sha256: digest, size };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
