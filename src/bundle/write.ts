import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InternalError } from '../errors.js';
import { TarWriter } from '../archive/tar-writer.js';
import { createCompressor } from '../archive/compress.js';
import type { Compression } from '../plan/plan.js';
import { testFaultPoint, type Staged } from '../util/fs.js';
import { sha256 } from '../util/hash.js';
import { writeStagedHashed, type FileHashing } from '../util/hash-worker.js';

/** One file of a bundle, by path relative to the bundle's top directory. */
export interface BundleFile {
  path: string;
  mode: number;
  /**
   * Content from a file on disk (a cached binary), from memory (a rendered template), or (in what
   * stageBundleTarball reports as written) streamed into the tarball (see StreamedFile).
   */
  source: { file: string } | { content: Buffer } | { stream: true };
  sha256: string;
  size: number;
}

export function memoryFile(path: string, content: string | Buffer, mode = 0o644): BundleFile {
  const buf = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  return { path, mode, source: { content: buf }, sha256: sha256(buf), size: buf.length };
}

/** `sha256sum -c` compatible lines, sorted by path, for every file given. */
export function sha256sums(files: BundleFile[]): string {
  return [...files]
    .sort((a, b) => cmp(a.path, b.path))
    .map((f) => `${f.sha256}  ${f.path}\n`)
    .join('');
}

export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A file of a bundle whose bytes are written straight into the tarball as they are produced (the images
 * archive, as its blobs arrive): its size is known before, its digest only once it was written.
 */
export interface StreamedFile {
  path: string;
  mode: number;
  size: number;
  /**
   * Writes exactly `size` bytes into `out` (not ending it) and resolves with their SHA-256 (hex); with
   * `hash` false it need not hash them (the tarball's writer hashes them in the file) and resolves with undefined.
   */
  write(out: Writable, hash: boolean): Promise<string | undefined>;
}

export interface WriteBundleOptions {
  /** Top directory inside the tarball. */
  topDir: string;
  files: BundleFile[];
  /** Written in path order among `files`. */
  streamed?: StreamedFile[];
  /**
   * The files that describe the others (bundle.json, SHA256SUMS, the SBOM), made once every file before
   * them is written (a streamed file's digest is known then) from all of those; they come last, in the
   * order given, and must sit in the top directory or a directory another file has.
   */
  trailer?: (written: BundleFile[]) => BundleFile[];
  mtime: number;
  compression: Compression;
  outFile: string;
}

export interface WrittenBundle {
  file: string;
  sha256: string;
  size: number;
}

/**
 * Writes `<topDir>/…` as a tarball: directories first, all entries sorted by path (the trailer's after
 * them, in its own order), fixed mtime, uid/gid 0, no owner names; compressed as asked; to a temp name
 * renamed into place only when complete.
 */
export async function writeBundleTarball(opts: WriteBundleOptions): Promise<WrittenBundle> {
  const staged = await stageBundleTarball(opts);
  await staged.commit();
  return staged.result;
}

type Entry = { path: string; dir: true } | { path: string; dir: false; file: BundleFile } | { path: string; dir: false; streamed: StreamedFile };

/**
 * The tarball as a complete temp file beside `outFile`, renamed by `commit()` (the build commits all of
 * its outputs together). Every file taken from disk (cache entries) is hashed as it is copied and must
 * match the `sha256` the bundle records for it (in SHA256SUMS and bundle.json): otherwise this throws
 * ContentMismatchError naming the file, and the temp file is gone.
 */
export async function stageBundleTarball(opts: WriteBundleOptions): Promise<Staged<WrittenBundle>> {
  const dirs = new Set<string>([opts.topDir]);
  for (const f of [...opts.files, ...(opts.streamed ?? [])]) {
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(`${opts.topDir}/${parts.slice(0, i).join('/')}`);
  }
  const inTop = (path: string) => `${opts.topDir}/${path}`;
  const entries: Entry[] = [
    ...[...dirs].map((d) => ({ path: `${d}/`, dir: true as const })),
    ...opts.files.map((f) => ({ path: inTop(f.path), dir: false as const, file: f })),
    ...(opts.streamed ?? []).map((f) => ({ path: inTop(f.path), dir: false as const, streamed: f })),
  ].sort((a, b) => cmp(a.path, b.path));

  // The tarball is hashed as it lands in the file, on the hashing thread.
  const staged = await writeStagedHashed(opts.outFile, async (out, hashing) => {
    // Uncompressed (no compressor), the tar stream goes straight into the file: a streamed file's bytes
    // are then a range of it, hashed there from the same reads.
    const compressor = createCompressor(opts.compression);
    const sink = compressor ? pipeline(compressor.output, out, { end: false }) : undefined;
    const tw = new TarWriter(compressor?.input ?? out, { mtime: opts.mtime });
    // A failure of the file (ENOSPC, EROFS at its open) ends the writing at once: the entries' writes
    // would otherwise wait for a drain that never comes (and the rejection be unhandled meanwhile).
    const fileFailed = new Promise<never>((_, reject) => (sink ? sink.catch(reject) : out.once('error', reject)));
    fileFailed.catch(() => {});
    const body = async () => {
      const written = await writeEntries(tw, entries, compressor ? undefined : hashing);
      for (const f of opts.trailer?.(written) ?? []) {
        const dir = f.path.includes('/') ? inTop(f.path.slice(0, f.path.lastIndexOf('/'))) : opts.topDir;
        if (!dirs.has(dir)) throw new InternalError(`bundle trailer file ${f.path} is in a directory the tarball does not have`);
        await writeEntry(tw, { path: inTop(f.path), dir: false, file: f });
      }
      await tw.finish();
      if (!compressor) return;
      compressor.input.end();
      await Promise.all([sink, compressor.done]);
    };
    try {
      await Promise.race([body(), fileFailed]);
    } catch (e) {
      // Stop the compressor (a zstd child) and the pipe into the temp file, which the caller removes.
      if (compressor) {
        compressor.input.destroy();
        compressor.output.destroy();
        await Promise.allSettled([sink, compressor.done]);
      }
      throw e;
    }
  });
  return { ...staged, result: { file: opts.outFile, sha256: staged.result.sha256, size: staged.result.size } };
}

/**
 * The entries in order; returns the files written (a streamed one with its digest). `file`: the hashing of
 * the file the tar stream goes straight into (uncompressed), where a streamed file's digest is taken.
 */
async function writeEntries(tw: TarWriter, entries: Entry[], file: FileHashing | undefined): Promise<BundleFile[]> {
  const written: BundleFile[] = [];
  let n = 0;
  for (const e of entries) {
    const f = await writeEntry(tw, e, file);
    if (f) written.push(f);
    if (++n === Math.ceil(entries.length / 2)) await testFaultPoint('bundle-tarball');
  }
  return written;
}

async function writeEntry(tw: TarWriter, e: Entry, file?: FileHashing): Promise<BundleFile | undefined> {
  if (e.dir) {
    await tw.addDirectory(e.path, { mode: 0o755 });
    return undefined;
  }
  if ('streamed' in e) {
    const s = e.streamed;
    let sha: string | undefined;
    let range: Promise<string> | undefined;
    await tw.addStreamed(
      e.path,
      s.size,
      async (out) => {
        // The header is written: the entry's bytes are the file's next `size` bytes.
        range = file?.range(tw.bytesWritten, tw.bytesWritten + s.size);
        range?.catch(() => {}); // awaited below, once written
        sha = await s.write(out, range === undefined);
      },
      { mode: s.mode },
    );
    sha ??= await range;
    if (sha === undefined) throw new InternalError(`bundle file ${s.path}: written without a digest`);
    return { path: s.path, mode: s.mode, size: s.size, sha256: sha, source: { stream: true } };
  }
  const f = e.file;
  if ('file' in f.source) await tw.addFile(e.path, f.source.file, { mode: f.mode, sha256: f.sha256 });
  else if ('content' in f.source) await tw.addBuffer(e.path, f.source.content, { mode: f.mode });
  else throw new InternalError(`bundle file ${f.path}: a streamed file given as a file`);
  return f;
}
