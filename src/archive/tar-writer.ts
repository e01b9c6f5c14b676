import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { once } from 'node:events';
import { createHash, type Hash } from 'node:crypto';
import { ContentMismatchError } from '../util/hash.js';
import { COPY_BUFFERS, markReleasing, releasesOnCallback, writeReleased, type BufferPool } from './chunk-release.js';

/*
 * Why hand-written and not node-tar's Pack (a dependency) or tar-stream (only dockerode's, through tar-fs):
 * neither can write these bytes, and a bundle's digest must not change with the library. Measured with
 * `node --import tsx bench/tar-libraries.ts` over 336 random blobs, 309 MiB, in the page cache (shared
 * 2-core VM, 2026-12-01, median of 3 / of 5 runs):
 *   TarWriter 768 / 909 ms; node-tar c({portable, mtime}) 541 / 750 ms but NOT byte-identical:
 *   mode "000755 \0" for "0000755\0", uid/gid and a directory's mtime left empty, size and checksum
 *   fields laid out otherwise, a path of exactly 100 bytes split into prefix (node-tar needs < 100),
 *   "PaxHeader/" pax names carrying mtime records; it also archives files from disk only (no entry from
 *   a buffer, no mode of our own). tar-stream 2.2 pack 839 / 1015 ms, NOT byte-identical either
 *   (mode "000755 \0", mtime "14524770400 ", checksum "010031 \0").
 */
/**
 * A small streaming tar writer that produces byte-identical output for identical input:
 * ustar headers (with the POSIX `prefix` field for long paths and a PAX record only when a path does not
 * fit), a fixed mtime, uid/gid 0, no user or group names, and entries in exactly the order they are
 * added (callers sort). File contents are streamed with backpressure, so memory does not grow with
 * file size. The format is read by GNU tar (CentOS 7's 1.26 included), busybox tar, bsdtar, Docker,
 * containerd and node-tar.
 */
export interface TarEntryOptions {
  mode?: number;
}

const BLOCK = 512;
const ZERO_BLOCK = Buffer.alloc(BLOCK);
const CHUNK = 1 << 20;
export class TarWriter {
  private readonly out: Writable;
  private readonly mtime: number;
  private written = 0;
  private finished = false;
  /** Set when `out` releases chunks at their write callbacks: file contents go through the shared copy buffers. */
  private readonly pool: BufferPool | undefined;
  /** Pooled chunks still being written; the first failure among them. */
  private readonly inflight = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  /** `pool`: the copy buffers (default the process-wide COPY_BUFFERS; tests give their own). */
  constructor(out: Writable, opts: { mtime: number; pool?: BufferPool }) {
    this.out = out;
    this.mtime = Math.floor(opts.mtime);
    this.pool = releasesOnCallback(out) ? (opts.pool ?? COPY_BUFFERS) : undefined;
  }

  /** Bytes written to the underlying stream so far. */
  get bytesWritten(): number {
    return this.written;
  }

  async addDirectory(path: string, opts: TarEntryOptions = {}): Promise<void> {
    const name = path.endsWith('/') ? path : `${path}/`;
    await this.writeHeader(name, 0, opts.mode ?? 0o755, '5');
  }

  async addBuffer(path: string, data: Buffer | string, opts: TarEntryOptions = {}): Promise<void> {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    await this.writeHeader(path, buf.length, opts.mode ?? 0o644, '0');
    await this.write(buf);
    await this.pad(buf.length);
  }

  /**
   * Streams a file from disk. The size is taken when the entry starts; a file that changes meanwhile is an error.
   * With `sha256` (hex), the bytes are hashed in the same pass as they are copied and a file that does not
   * match throws ContentMismatchError once it was read (the entry's bytes are then in the output: callers
   * write to a temp file and discard it).
   */
  async addFile(path: string, sourceFile: string, opts: TarEntryOptions & { sha256?: string } = {}): Promise<void> {
    const { size } = await stat(sourceFile);
    await this.writeHeader(path, size, opts.mode ?? 0o644, '0');
    // One more SHA-256 pass, on blobs from an earlier build's cache only: `npm run bench` (scale 0.25, shared 2-core VM) warm 0.48 s → 0.75 s (0.16× → 0.17× floor), cold unchanged (0.47× → 0.56×, noise); RSS unchanged.
    // (Hashing on a second thread reading the same open file instead: warm 0.654 → 0.628 s, 2026-12-03,
    // medians of 7; dropped, as then the bytes verified are no longer exactly the bytes copied.)
    const hash = opts.sha256 !== undefined ? createHash('sha256') : undefined;
    const copied = this.pool ? await this.copyPooled(sourceFile, size, hash) : await this.copyStreamed(sourceFile, size, hash);
    if (copied !== size) throw new Error(`${sourceFile} shrank while being archived (${copied} of ${size} bytes)`);
    const actual = hash?.digest('hex');
    if (actual !== undefined && actual !== opts.sha256) throw new ContentMismatchError(sourceFile, opts.sha256!, actual, copied);
    await this.pad(size);
  }

  /** The file's bytes through fresh buffers (an output that may keep a chunk after its callback). */
  private async copyStreamed(sourceFile: string, size: number, hash: Hash | undefined): Promise<number> {
    let copied = 0;
    for await (const chunk of createReadStream(sourceFile, { highWaterMark: CHUNK })) {
      const b = chunk as Buffer;
      copied += b.length;
      if (copied > size) throw new Error(`${sourceFile} grew while being archived`);
      // Hand the chunk to the output first (its write runs in the thread pool), then hash it here.
      const written = this.write(b);
      hash?.update(b);
      await written;
    }
    return copied;
  }

  /**
   * The file's bytes through buffers of the shared pool, read at their offsets: each is given back once
   * the output called back for its chunk, so chunks are in flight (as many as the pool lends) while the
   * next is read and the last hashed. A failed write surfaces at the next chunk, or in finish().
   */
  private async copyPooled(sourceFile: string, size: number, hash: Hash | undefined): Promise<number> {
    const pool = this.pool!;
    const fh = await open(sourceFile, 'r');
    let copied = 0;
    try {
      for (;;) {
        this.throwFailure();
        const buf = await pool.acquire();
        let bytesRead: number;
        try {
          ({ bytesRead } = await fh.read(buf, 0, CHUNK, copied));
        } catch (e) {
          pool.release(buf);
          throw e;
        }
        if (bytesRead === 0) {
          pool.release(buf);
          break;
        }
        copied += bytesRead;
        if (copied > size) {
          pool.release(buf);
          throw new Error(`${sourceFile} grew while being archived`);
        }
        const chunk = bytesRead === CHUNK ? buf : buf.subarray(0, bytesRead);
        const w: Promise<void> = this.writeReleasing(chunk).then(
          () => {
            this.inflight.delete(w);
            pool.release(buf);
          },
          (e: unknown) => {
            this.inflight.delete(w);
            this.failure ??= { error: e };
            pool.release(buf);
          },
        );
        this.inflight.add(w);
        // Hashed while the output writes it; the buffer goes back to the pool only once the output called back.
        hash?.update(chunk);
      }
    } finally {
      await fh.close();
    }
    return copied;
  }

  private throwFailure(): void {
    if (this.failure) throw this.failure.error;
  }

  /**
   * An entry of exactly `size` bytes that `body` writes into the stream it is given (not ended by body),
   * with backpressure: a nested archive written straight into this one, without a file of its own.
   * Fewer or more bytes than `size` is an error (the output is then unusable: callers write to a temp file).
   */
  async addStreamed(path: string, size: number, body: (out: Writable) => Promise<void>, opts: TarEntryOptions = {}): Promise<void> {
    await this.writeHeader(path, size, opts.mode ?? 0o644, '0');
    let given = 0;
    // Over an output that releases chunks, the sink calls back only once that output did, and says so:
    // what writes into it may then reuse its buffers too.
    const forward = (chunk: Buffer) => (this.pool ? this.writeReleasing(chunk) : this.write(chunk));
    const sink = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        given += chunk.length;
        if (given > size) cb(new Error(`${path}: more than the ${size} bytes announced`));
        else forward(chunk).then(() => cb(), cb);
      },
    });
    if (this.pool) markReleasing(sink);
    sink.on('error', () => {}); // surfaces through body's writes and `finished` below
    await body(sink);
    sink.end();
    await finished(sink);
    if (given !== size) throw new Error(`${path}: ${given} bytes written, ${size} announced`);
    await this.pad(size);
  }

  /** Writes the two zero blocks that end an archive. Does not end the underlying stream. */
  async finish(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.write(Buffer.concat([ZERO_BLOCK, ZERO_BLOCK]));
    // The last chunks of a pooled copy: written, or their failure thrown here.
    await Promise.all(this.inflight);
    this.throwFailure();
  }

  /** Writes `chunk` into an output that releases chunks; resolves once it did (the buffer is free again). */
  private writeReleasing(chunk: Buffer): Promise<void> {
    this.written += chunk.length;
    return writeReleased(this.out, chunk);
  }

  private async pad(size: number): Promise<void> {
    const rest = size % BLOCK;
    if (rest !== 0) await this.write(ZERO_BLOCK.subarray(0, BLOCK - rest));
  }

  private async write(buf: Buffer): Promise<void> {
    if (buf.length === 0) return;
    this.written += buf.length;
    if (!this.out.write(buf)) {
      await once(this.out, 'drain');
    }
  }

  private async writeHeader(path: string, size: number, mode: number, type: '0' | '5'): Promise<void> {
    if (this.finished) throw new Error('tar archive already finished');
    for (const b of headerBlocks(path, size, mode, type, this.mtime)) await this.write(b);
  }
}

/** Bytes a file entry of `size` bytes at `path` takes in the archive: its header block(s) and padded content. */
export function entryBytes(path: string, size: number): number {
  return headerBlocks(path, size, 0o644, '0', 0).reduce((n, b) => n + b.length, 0) + Math.ceil(size / BLOCK) * BLOCK;
}

/** Bytes of the end of an archive (finish()). */
export const END_BYTES = 2 * BLOCK;

/** The header of one entry: a ustar header, preceded by a PAX header (padded) when the path does not fit. */
function headerBlocks(path: string, size: number, mode: number, type: '0' | '5', mtime: number): Buffer[] {
  if (path.startsWith('/') || path.split('/').includes('..')) throw new Error(`unsafe tar path: ${path}`);
  const split = splitUstarName(path);
  const blocks: Buffer[] = [];
  if (!split || size > 0o77777777777) {
    // PAX extended header carrying the full path (and size, for files over 8 GiB).
    const records = [paxRecord('path', path)];
    if (size > 0o77777777777) records.push(paxRecord('size', String(size)));
    const body = Buffer.from(records.join(''), 'utf8');
    const paxName = `PaxHeaders/${path.replace(/\/$/, '').split('/').pop() ?? 'entry'}`.slice(0, 99);
    blocks.push(ustarHeader(paxName, '', body.length, 0o644, 'x', mtime), body);
    if (body.length % BLOCK !== 0) blocks.push(ZERO_BLOCK.subarray(0, BLOCK - (body.length % BLOCK)));
  }
  const [name, prefix] = split ?? [truncateName(path), ''];
  blocks.push(ustarHeader(name, prefix, size > 0o77777777777 ? 0 : size, mode, type, mtime));
  return blocks;
}

function paxRecord(key: string, value: string): string {
  // "<len> <key>=<value>\n" where <len> counts itself.
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

/** Splits a path into ustar name (≤100 bytes) and prefix (≤155 bytes), or undefined when it cannot. */
function splitUstarName(path: string): [string, string] | undefined {
  if (!/^[\x20-\x7e]*$/.test(path)) return undefined;
  if (path.length <= 100) return [path, ''];
  // Split at a slash so that prefix ≤ 155 and name ≤ 100.
  for (let i = path.length - 1; i > 0; i--) {
    if (path[i] !== '/') continue;
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (prefix.length <= 155 && name.length <= 100 && name.length > 0) return [name, prefix];
  }
  return undefined;
}

function truncateName(path: string): string {
  return Buffer.from(path, 'utf8').subarray(0, 100).toString('latin1');
}

function octal(value: number, width: number): string {
  // width includes the terminating NUL.
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function ustarHeader(name: string, prefix: string, size: number, mode: number, type: string, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode & 0o7777, 8), 100, 8, 'ascii');
  h.write(octal(0, 8), 108, 8, 'ascii'); // uid
  h.write(octal(0, 8), 116, 8, 'ascii'); // gid
  h.write(octal(size, 12), 124, 12, 'ascii');
  h.write(octal(mtime, 12), 136, 12, 'ascii');
  h.write('        ', 148, 8, 'ascii'); // checksum placeholder
  h.write(type, 156, 1, 'ascii');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  // uname/gname left empty; devmajor/devminor zero.
  h.write(octal(0, 8), 329, 8, 'ascii');
  h.write(octal(0, 8), 337, 8, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}
