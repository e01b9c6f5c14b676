import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rename, rm, stat, writeFile, mkdtemp, chmod } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';
import * as tar from 'tar';
import { UserError, fsError, isMachineFailure } from '../errors.js';
import type { ChecksumSource, PlannedBinary } from '../plan/plan.js';
import type { ProgressSink } from '../progress/sink.js';
import { silentSink } from '../progress/sink.js';
import { ContentMismatchError, hashingTap, SHA256_HEX, sha256, sha256File } from '../util/hash.js';
import { withFileLock } from '../util/lock.js';
import { mkdirp } from '../util/fs.js';
import { debug, safeUrl } from '../util/debug.js';
import { fetchWithRetry } from './http.js';
import { fmtBytes } from '../util/format.js';

/**
 * Binary downloads: verified against the manifest's checksum source, stored in the content-addressed
 * cache (`<cache>/blobs/sha256/<hex>`, shared with image blobs), resumable (`<cache>/partial/`, HTTP
 * Range), safe with two builds at once (a lock per URL), and never refetched once cached.
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

const key = (s: string) => sha256(s);

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
      // Another build may have finished it while we waited for the lock.
      const again = await readJson<UrlIndexEntry>(indexPath);
      if (again && (await usable(again))) return again;
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

/** The digest the download must have: pinned in the manifest, or read from the upstream checksum file. */
async function expectedDigest(b: PlannedBinary, opts: FetchOptions): Promise<{ algorithm: 'sha256' | 'sha512'; digest: string }> {
  const src: ChecksumSource = b.checksum;
  if (src.kind === 'pinned') {
    if (/^0+$/.test(src.digest)) {
      throw new UserError(`${b.name}: the manifest pins no real digest for ${b.upstreamUrl} (all zeros)`, {
        code: 'manifest',
        hint: `download it from a trusted network, run 'sha256sum' on it and put the digest under sha256.pinned in the manifest`,
      });
    }
    return { algorithm: 'sha256', digest: src.digest };
  }
  const cachePath = join(opts.cacheDir, 'checksums', `${key(src.upstreamUrl)}.txt`);
  let text = await readFile(cachePath, 'utf8').catch(() => undefined);
  if (text === undefined) {
    const res = await fetchWithRetry(src.url, { signal: opts.signal ?? null }, `${b.name} checksum`);
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw UserError.runtime(res.status === 404 ? 'not-found' : 'network', `${b.name}: checksum file ${src.url} answered HTTP ${res.status}`, 'check the version in the manifest and the mirror (--binary-mirror)');
    }
    text = await res.text();
    parseChecksumFile(text, src.entry, src.algorithm, src.url); // validate before caching
    await writeFileAtomic(cachePath, text);
  }
  return { algorithm: src.algorithm, digest: parseChecksumFile(text, src.entry, src.algorithm, src.url) };
}

/**
 * Accepts `sha256sum`/`sha512sum` output (`<hex>  <name>` or `<hex> *<name>`, any number of lines) or a
 * file holding one bare digest (KubeEdge's format).
 */
export function parseChecksumFile(text: string, entry: string, algorithm: 'sha256' | 'sha512', url: string): string {
  const hexLen = algorithm === 'sha256' ? 64 : 128;
  const re = new RegExp(`^([a-fA-F0-9]{${hexLen}})(?:\\s+\\*?(.+))?$`);
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  const parsed = lines.map((l) => re.exec(l)).filter((m): m is RegExpExecArray => m !== null);
  const named = parsed.find((m) => m[2] !== undefined && (m[2] === entry || m[2].split('/').pop() === entry));
  if (named?.[1]) return named[1].toLowerCase();
  if (parsed.length === 1 && parsed[0]?.[2] === undefined && lines.length === 1) return (parsed[0][1] ?? '').toLowerCase();
  throw UserError.runtime(
    'manifest',
    `checksum file ${url} has no ${algorithm} entry for '${entry}'`,
    `expected '<${hexLen} hex digits>  ${entry}' or one bare digest; check sha256.entry/algorithm in the manifest`,
  );
}

async function download(
  b: PlannedBinary,
  expected: { algorithm: 'sha256' | 'sha512'; digest: string },
  opts: FetchOptions,
  progress: ProgressSink,
  attempt = 1,
): Promise<{ partial: string; sha256: string; size: number }> {
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
  const h256 = createHash('sha256');
  const hExp = expected.algorithm === 'sha512' ? createHash('sha512') : undefined;
  if (resumed) {
    for await (const c of createReadStream(partial)) {
      h256.update(c as Buffer);
      hExp?.update(c as Buffer);
    }
  }
  const total = Number(res.headers.get('content-length') ?? NaN) + have;
  progress.start(b.name, Number.isFinite(total) ? total : undefined);
  if (resumed) progress.note(b.name, `resuming at ${fmtBytes(have)}`);
  let size = have;
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h256.update(chunk);
      hExp?.update(chunk);
      size += chunk.length;
      progress.bytes(b.name, chunk.length);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), hasher, createWriteStream(partial, { flags: resumed ? 'a' : 'w' }));
  } catch (e) {
    // A full, read-only or forbidden cache is no dropped connection: reported as such, nothing kept.
    if (isMachineFailure(e)) {
      await rm(partial, { force: true });
      throw fsError(e, opts.cacheDir, `caching ${b.name} in`, opts.cacheDir);
    }
    // A dropped connection: what arrived stays in the partial file; continue from there (bounded).
    if (opts.signal?.aborted || attempt >= 4) {
      throw UserError.runtime('network', `${b.name}: download of ${b.url} broke off at ${fmtBytes(size)} (${(e as Error).message})`, 'run the build again: it resumes from the partial download', e);
    }
    progress.note(b.name, `connection dropped at ${fmtBytes(size)}, resuming`);
    debug('retry', `${b.name}: ${safeUrl(b.url)} broke off at ${size} bytes (${(e as Error).message}); resuming`);
    return download(b, expected, opts, progress, attempt + 1);
  }
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

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

async function readJson<T>(p: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(p, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

async function writeJsonAtomic(p: string, v: unknown): Promise<void> {
  await writeFileAtomic(p, JSON.stringify(v));
}

/** Writes `text` to a temp file beside `p`, then renames it; a failed write leaves no temp file. */
async function writeFileAtomic(p: string, text: string): Promise<void> {
  await mkdirp(dirname(p));
  const tmp = `${p}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, text);
    await rename(tmp, p);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
