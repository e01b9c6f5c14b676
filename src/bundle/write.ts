import { pipeline } from 'node:stream/promises';
import { TarWriter } from '../archive/tar-writer.js';
import { createCompressor } from '../archive/compress.js';
import type { Compression } from '../plan/plan.js';
import { testFaultPoint, writeStaged, type Staged } from '../util/fs.js';
import { hashingTap, sha256 } from '../util/hash.js';

/** One file of a bundle, by path relative to the bundle's top directory. */
export interface BundleFile {
  path: string;
  mode: number;
  /** Content from a file on disk (cache blob, images archive) or from memory (rendered template). */
  source: { file: string } | { content: Buffer };
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

export interface WriteBundleOptions {
  /** Top directory inside the tarball. */
  topDir: string;
  files: BundleFile[];
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
 * Writes `<topDir>/…` as a tarball: directories first, all entries sorted by path, fixed mtime, uid/gid
 * 0, no owner names; compressed as asked; to a temp name renamed into place only when complete.
 */
export async function writeBundleTarball(opts: WriteBundleOptions): Promise<WrittenBundle> {
  const staged = await stageBundleTarball(opts);
  await staged.commit();
  return staged.result;
}

/**
 * The tarball as a complete temp file beside `outFile`, renamed by `commit()` (the build commits all of
 * its outputs together). Every file taken from disk (cache entries, the images archive) is hashed as
 * it is copied and must match the `sha256` the bundle records for it (in SHA256SUMS and bundle.json):
 * otherwise this throws ContentMismatchError naming the file, and the temp file is gone.
 */
export async function stageBundleTarball(opts: WriteBundleOptions): Promise<Staged<WrittenBundle>> {
  const dirs = new Set<string>([opts.topDir]);
  for (const f of opts.files) {
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(`${opts.topDir}/${parts.slice(0, i).join('/')}`);
  }
  type Entry = { path: string; dir: true } | { path: string; dir: false; file: BundleFile };
  const entries: Entry[] = [
    ...[...dirs].map((d) => ({ path: `${d}/`, dir: true as const })),
    ...opts.files.map((f) => ({ path: `${opts.topDir}/${f.path}`, dir: false as const, file: f })),
  ].sort((a, b) => cmp(a.path, b.path));

  return writeStaged(opts.outFile, async (out) => {
    const compressor = createCompressor(opts.compression);
    const counter = hashingTap();
    const sink = pipeline(compressor.output, counter.stream, out, { end: false });
    const tw = new TarWriter(compressor.input, { mtime: opts.mtime });
    try {
      let n = 0;
      for (const e of entries) {
        if (e.dir) await tw.addDirectory(e.path, { mode: 0o755 });
        else if ('file' in e.file.source) await tw.addFile(e.path, e.file.source.file, { mode: e.file.mode, sha256: e.file.sha256 });
        else await tw.addBuffer(e.path, e.file.source.content, { mode: e.file.mode });
        if (++n === Math.ceil(entries.length / 2)) await testFaultPoint('bundle-tarball');
      }
      await tw.finish();
      compressor.input.end();
      await Promise.all([sink, compressor.done]);
    } catch (e) {
      // Stop the compressor (a zstd child) and the pipe into the temp file, which the caller removes.
      compressor.input.destroy();
      compressor.output.destroy();
      await Promise.allSettled([sink, compressor.done]);
      throw e;
    }
    return { file: opts.outFile, sha256: counter.hex(), size: counter.bytes() };
  });
}
