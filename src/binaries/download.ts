import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';
import { UserError, fsError, isMachineFailure } from '../errors.js';
import type { PlannedBinary } from '../plan/plan.js';
import type { ProgressSink } from '../progress/sink.js';
import { mkdirp } from '../util/fs.js';
import { debug, safeUrl } from '../util/debug.js';
import { fmtBytes } from '../util/format.js';
import { key } from './cache-files.js';
import type { ExpectedDigest } from './checksum.js';
import { fetchWithRetry } from './http.js';

/** A verified download, still in `<cache>/partial/` (the caller renames it into the cache). */
export interface Downloaded {
  partial: string;
  sha256: string;
  size: number;
}

/** SHA-256 of the download, plus SHA-512 when that is what the checksum source gives. */
interface Hashes {
  h256: Hash;
  hExp: Hash | undefined;
}

/**
 * Downloads `b.url` into `<cache>/partial/<key>.partial`, resuming a partial file with HTTP Range, and
 * verifies it against `expected`. A dropped connection resumes (bounded); a mismatch leaves nothing.
 */
export async function download(b: PlannedBinary, expected: ExpectedDigest, opts: { cacheDir: string; signal?: AbortSignal }, progress: ProgressSink, attempt = 1): Promise<Downloaded> {
  const partialDir = join(opts.cacheDir, 'partial');
  await mkdirp(partialDir);
  const partial = join(partialDir, `${key(b.url)}.partial`);
  let have = (await stat(partial).catch(() => undefined))?.size ?? 0;
  const headers: Record<string, string> = have > 0 ? { Range: `bytes=${have}-` } : {};
  debug('binary', `${b.name}: download ${safeUrl(b.url)}${have > 0 ? ` from byte ${have}` : ''} (try ${attempt})`);
  const res = await fetchWithRetry(b.url, {}, b.name, undefined, () => ({ headers, signal: opts.signal ?? null }));
  if (res.status === 416) {
    // The partial file is not a prefix the server recognises: start over.
    await res.body?.cancel().catch(() => {});
    await rm(partial, { force: true });
    if (attempt > 3) throw UserError.runtime('network', `${b.name}: ${b.url} keeps refusing the byte range of a partial download`, 'try again later');
    return download(b, expected, opts, progress, attempt + 1);
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel().catch(() => {});
    throw UserError.runtime(res.status === 404 ? 'not-found' : 'network', `${b.name}: ${b.url} answered HTTP ${res.status}`, res.status === 404 ? 'check the version and arch in the manifest, or the mirror' : 'try again later');
  }
  const resumed = res.status === 206 && have > 0;
  if (!resumed) have = 0;
  const hashes = await startHashes(expected, resumed ? partial : undefined);
  const total = Number(res.headers.get('content-length') ?? NaN) + have;
  progress.start(b.name, Number.isFinite(total) ? total : undefined);
  if (resumed) progress.note(b.name, `resuming at ${fmtBytes(have)}`);
  const got = await receive(res.body as import('node:stream/web').ReadableStream<Uint8Array>, partial, resumed, have, hashes, b.name, progress);
  if (got.failed) {
    const e = got.error;
    // A full, read-only or forbidden cache is no dropped connection: reported as such, nothing kept.
    if (isMachineFailure(e)) {
      await rm(partial, { force: true });
      throw fsError(e, opts.cacheDir, `caching ${b.name} in`, opts.cacheDir);
    }
    // A dropped connection: what arrived stays in the partial file; continue from there (bounded).
    if (opts.signal?.aborted || attempt >= 4) {
      throw UserError.runtime('network', `${b.name}: download of ${b.url} broke off at ${fmtBytes(got.size)} (${(e as Error).message})`, 'run the build again: it resumes from the partial download', e);
    }
    progress.note(b.name, `connection dropped at ${fmtBytes(got.size)}, resuming`);
    debug('retry', `${b.name}: ${safeUrl(b.url)} broke off at ${got.size} bytes (${(e as Error).message}); resuming`);
    return download(b, expected, opts, progress, attempt + 1);
  }
  return verified(b, expected, partial, hashes, got.size);
}

/** The hashes, fed with the partial file's bytes when the download resumes it. */
async function startHashes(expected: ExpectedDigest, resumedFrom: string | undefined): Promise<Hashes> {
  const h256 = createHash('sha256');
  const hExp = expected.algorithm === 'sha512' ? createHash('sha512') : undefined;
  if (resumedFrom !== undefined) {
    for await (const c of createReadStream(resumedFrom)) {
      h256.update(c as Buffer);
      hExp?.update(c as Buffer);
    }
  }
  return { h256, hExp };
}

/** Streams the body into the partial file through the hashes; the size reached, and the error if it broke off. */
async function receive(
  body: import('node:stream/web').ReadableStream<Uint8Array>,
  partial: string,
  resumed: boolean,
  have: number,
  { h256, hExp }: Hashes,
  name: string,
  progress: ProgressSink,
): Promise<{ size: number; failed: false } | { size: number; failed: true; error: unknown }> {
  let size = have;
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h256.update(chunk);
      hExp?.update(chunk);
      size += chunk.length;
      progress.bytes(name, chunk.length);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(body), hasher, createWriteStream(partial, { flags: resumed ? 'a' : 'w' }));
  } catch (error) {
    return { size, failed: true, error };
  }
  return { size, failed: false };
}

/** The download checked against the expected digest; a mismatch removes the partial file. */
async function verified(b: PlannedBinary, expected: ExpectedDigest, partial: string, { h256, hExp }: Hashes, size: number): Promise<Downloaded> {
  const got256 = h256.digest('hex');
  const got = hExp ? hExp.digest('hex') : got256;
  if (got !== expected.digest) {
    await rm(partial, { force: true });
    throw UserError.runtime(
      'digest-mismatch',
      `${b.name}: ${expected.algorithm} mismatch for ${b.url}: expected ${expected.digest}, got ${got}`,
      'the download is corrupt or the mirror serves another file; nothing was cached — check the mirror and the manifest, then build again',
    );
  }
  return { partial, sha256: got256, size };
}
