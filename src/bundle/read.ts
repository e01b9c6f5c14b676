import { spawn, spawnSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { UserError } from '../errors.js';
import { TarStreamParser, type OnTarEntry, type TarReadState } from '../archive/tar-parser.js';

export { TarStreamParser, type OnTarEntry, type TarEntryHeader, type TarEntrySink, type TarEntryType, type TarReadState } from '../archive/tar-parser.js';

/**
 * Reads bundle tarballs as streams, never unpacking to disk, with archive/tar-parser.ts's push parser
 * (`TarStreamParser`, re-exported here; a tar inside a tar, the bundle's `images/images.tar`, is read
 * by feeding the inner entry's chunks to a second parser): `readTarball` detects the compression by
 * magic bytes (gzip, zstd via the `zstd` program, or none) and reports a truncated or corrupt archive
 * as a problem instead of throwing.
 */
export type TarCompression = 'none' | 'gzip' | 'zstd';

export interface TarballReadResult extends TarReadState {
  compression: TarCompression;
  /** Size of the file on disk. */
  fileSize: number;
}

/** Detects the compression from the first bytes: gzip `1f 8b`, zstd `28 b5 2f fd`; xz and bzip2 are named but not supported. */
export function detectCompression(head: Buffer): TarCompression | 'xz' | 'bzip2' {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32BE(0) === 0x28b52ffd) return 'zstd';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  return 'none';
}

/**
 * Streams `file` (plain, gzip or zstd tar, detected by magic bytes) through a `TarStreamParser`.
 * A file that cannot be opened is a UserError (exit 2); a truncated or corrupt archive or a broken
 * compression stream is reported in the result (`complete: false`, `problem`).
 */
export async function readTarball(file: string, onEntry: OnTarEntry): Promise<TarballReadResult> {
  const { fileSize, head } = await probe(file);
  const kind = detectCompression(head);
  if (kind === 'xz' || kind === 'bzip2') {
    return { compression: 'none', fileSize, complete: false, problem: `unsupported: ${file} is ${kind}-compressed; bundles are plain tar, gzip or zstd`, entries: 0, bytes: 0 };
  }
  const parser = new TarStreamParser(onEntry);
  const { stream, decompressorDone } = decompressed(file, kind);
  let streamError: string | undefined;
  try {
    for await (const chunk of stream) parser.write(chunk as Buffer);
  } catch (e) {
    streamError = (e as Error).message;
  }
  const zstdError = await decompressorDone;
  const state = parser.end();
  const compression: TarCompression = kind;
  const broken = streamError ?? zstdError;
  if (broken && state.complete) {
    // The tar inside ended cleanly but the compressed stream did not (e.g. cut after the tar's end).
    return { ...state, compression, fileSize, complete: false, problem: `truncated or corrupt ${kind} stream after the end of the tar data: ${broken}` };
  }
  if (broken) {
    return { ...state, compression, fileSize, problem: `truncated or corrupt ${kind} stream (${broken}); ${state.problem ?? ''}`.replace(/; $/, '') };
  }
  return { ...state, compression, fileSize };
}

/** The size of `file` and its first (up to 8) bytes; a path that is not a readable file is a UserError. */
async function probe(file: string): Promise<{ fileSize: number; head: Buffer }> {
  const head = Buffer.alloc(8);
  try {
    const fh = await open(file, 'r');
    try {
      const fileSize = (await fh.stat()).size;
      if (!(await fh.stat()).isFile()) throw new UserError(`${file} is not a file`, { code: 'input', hint: 'give the path of a bundle tarball' });
      await fh.read(head, 0, 8, 0);
      return { fileSize, head: head.subarray(0, Math.min(8, fileSize)) };
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { code: 'input', hint: 'give the path of a bundle tarball', cause: e });
  }
}

/** The tar bytes of `file`; for zstd, `decompressorDone` resolves to the program's complaint, if any. */
function decompressed(file: string, kind: TarCompression): { stream: Readable; decompressorDone: Promise<string | undefined> } {
  const input = createReadStream(file, { highWaterMark: 1 << 20 });
  if (kind === 'gzip') {
    const gunzip = createGunzip({ chunkSize: 1 << 20 });
    input.pipe(gunzip);
    input.on('error', (e) => gunzip.destroy(e));
    return { stream: gunzip, decompressorDone: Promise.resolve(undefined) };
  }
  if (kind === 'none') return { stream: input, decompressorDone: Promise.resolve(undefined) };
  if (spawnSync('zstd', ['--version'], { stdio: 'ignore' }).status !== 0) {
    input.destroy();
    throw UserError.runtime('missing-tool', `${file} is zstd-compressed and reading it needs the zstd program, which is not installed`, 'install zstd (apt-get install zstd)');
  }
  const child = spawn('zstd', ['-d', '-c', '-q', '--no-progress'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.on('error', () => undefined); // EPIPE when zstd stops early; its exit status says why
  input.pipe(child.stdin);
  const decompressorDone = new Promise<string | undefined>((resolve) => {
    child.on('error', (e) => resolve(`zstd: ${e.message}`));
    child.on('close', (code) => resolve(code === 0 ? undefined : `zstd: ${stderr.trim().split('\n').pop() ?? `exit ${code}`}`));
  });
  return { stream: child.stdout, decompressorDone };
}
