/*
 * Why hand-written and not node-tar's Parser (a dependency) or tar-stream's extract (only dockerode's,
 * through tar-fs). Measured with `node --import tsx bench/tar-libraries.ts` (KP_TAR_BENCH=read for the
 * readers only) over a 309 MiB tar of 336 random blobs in the page cache, 1 MiB chunks, every body
 * consumed, shared 2-core VM, 2026-12-01:
 *   - at load ~1-2, wall-time medians of 3 / of 5 runs: this parser 104 / 149 ms, node-tar 7.5 Parser
 *     139 / 285 ms, tar-stream 2.2 extract 328 / 384 ms;
 *   - at load ~17-20 (wall time is noise there), CPU-time medians of 5, three rounds: this parser
 *     106 / 77 / 83 ms, node-tar 111 / 122 / 102 ms, tar-stream 187 / 148 / 199 ms.
 * So node-tar is slower, but only by 10-35 % of a cost that is small beside hashing the same bytes. What
 * decides is what a damaged archive is reported as: `verify` names the byte offset, the entry and the
 * bytes missing (its `truncated` / `corrupt` problems), where node-tar's Parser emits a warning
 * ("TAR_BAD_ARCHIVE: Truncated input (needed N more bytes, only M available)") without the entry
 * or offset, and accepts an archive that ends without its end-of-archive marker silently.
 */
/**
 * The one tar reader of the project: a push parser (`TarStreamParser`) that is fed chunks and hands
 * each entry's data to a handler as it streams by. bundle/read.ts reads bundles with it (a tar inside a
 * tar by feeding the inner entry's chunks to a second parser); engines/docker/tar-reader.ts turns it
 * into a pull-based async iterator for `docker save` streams.
 */
export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

export interface TarEntryHeader {
  path: string;
  type: TarEntryType;
  size: number;
  mode: number;
  linkname: string;
}

/** Receives one entry's data, synchronously, in order. */
export interface TarEntrySink {
  data(chunk: Buffer): void;
  end(): void;
}

export type OnTarEntry = (header: TarEntryHeader) => TarEntrySink | undefined | void;

export interface TarReadState {
  /** True when the archive ended with its end-of-archive marker after the last complete entry. */
  complete: boolean;
  /** Why it is not complete (truncated, corrupt header …); undefined when complete. */
  problem?: string;
  entries: number;
  /** Bytes of tar data consumed (after decompression). */
  bytes: number;
}

const BLOCK = 512;

type State =
  | { kind: 'header' }
  | { kind: 'data'; header: TarEntryHeader; remaining: number; padding: number; sink: TarEntrySink | undefined; meta: Buffer[] | undefined; metaType: string }
  | { kind: 'padding'; remaining: number }
  | { kind: 'eof' }
  | { kind: 'error'; message: string };

/**
 * Push parser for ustar / POSIX pax / GNU tar: `write()` chunks of any size, then `end()`.
 * Handles the ustar `prefix` field, pax `path`/`linkpath`/`size` records (per entry and global) and GNU
 * long names. Header checksums are checked. Never throws on bad input: the result of `end()` says
 * whether the archive was complete and, if not, why.
 */
export class TarStreamParser {
  private state: State = { kind: 'header' };
  private pending: Buffer = Buffer.alloc(0);
  private offset = 0;
  private entries = 0;
  private zeroBlocks = 0;
  private pax: Record<string, string> = {};
  private globalPax: Record<string, string> = {};
  private gnuLongName: string | undefined;
  private gnuLongLink: string | undefined;
  private lastEntry: string | undefined;

  constructor(private readonly onEntry: OnTarEntry) {}

  /** True once the end-of-archive marker (two zero blocks) was read: later input is ignored. */
  get atEnd(): boolean {
    return this.state.kind === 'eof';
  }

  /** Why the input is not a (readable) tar, once that is known before `end()`; later input is ignored. */
  get failure(): string | undefined {
    return this.state.kind === 'error' ? this.state.message : undefined;
  }

  write(chunk: Buffer): void {
    let buf = chunk;
    while (buf.length > 0) {
      const s = this.state;
      if (s.kind === 'eof' || s.kind === 'error') return; // trailing data after the end marker is ignored
      if (s.kind === 'data') {
        const n = Math.min(s.remaining, buf.length);
        if (n > 0) {
          const part = buf.subarray(0, n);
          if (s.meta) s.meta.push(Buffer.from(part));
          else s.sink?.data(part);
          s.remaining -= n;
          this.offset += n;
          buf = buf.subarray(n);
        }
        if (s.remaining === 0) this.finishEntry(s);
        continue;
      }
      if (s.kind === 'padding') {
        const n = Math.min(s.remaining, buf.length);
        s.remaining -= n;
        this.offset += n;
        buf = buf.subarray(n);
        if (s.remaining === 0) this.state = { kind: 'header' };
        continue;
      }
      // header: collect 512 bytes
      const need = BLOCK - this.pending.length;
      const take = buf.subarray(0, need);
      this.pending = this.pending.length === 0 ? Buffer.from(take) : Buffer.concat([this.pending, take]);
      buf = buf.subarray(take.length);
      if (this.pending.length < BLOCK) continue;
      const block = this.pending;
      this.pending = Buffer.alloc(0);
      this.offset += BLOCK;
      this.onHeaderBlock(block);
    }
  }

  end(): TarReadState {
    const base = { entries: this.entries, bytes: this.offset };
    const s = this.state;
    if (s.kind === 'error') return { ...base, complete: false, problem: s.message };
    if (s.kind === 'eof') return { ...base, complete: true };
    if (s.kind === 'data') {
      const got = s.header.size - s.remaining;
      s.sink?.end();
      return { ...base, complete: false, problem: `truncated: the archive ends inside ${s.header.path} after ${got} of ${s.header.size} bytes` };
    }
    if (this.pending.length > 0 || s.kind === 'padding') {
      return { ...base, complete: false, problem: `truncated: the archive ends in the middle of a ${s.kind === 'padding' ? 'padding' : 'header'} block at byte ${this.offset + this.pending.length}` };
    }
    if (this.zeroBlocks === 1) return { ...base, complete: true }; // one zero block: GNU tar accepts it too
    if (this.entries === 0) return { ...base, complete: false, problem: 'empty: no tar data at all' };
    return {
      ...base,
      complete: false,
      problem: `truncated: the archive ends after ${this.lastEntry ?? 'its last entry'} without the end-of-archive marker (more entries may be missing)`,
    };
  }

  private fail(message: string): void {
    this.state = { kind: 'error', message };
  }

  private onHeaderBlock(block: Buffer): void {
    if (isZero(block)) {
      this.zeroBlocks++;
      if (this.zeroBlocks === 2) this.state = { kind: 'eof' };
      return;
    }
    if (this.zeroBlocks > 0) {
      // A lone zero block followed by more data: treat as corrupt.
      this.fail(`corrupt: a zero block at byte ${this.offset - 2 * BLOCK} is followed by more data`);
      return;
    }
    const headerAt = this.offset - BLOCK;
    if (!checksumOk(block)) {
      this.fail(
        this.entries === 0
          ? 'corrupt: not a tar archive (the first header has no valid checksum)'
          : `corrupt: the tar header at byte ${headerAt} (after ${this.lastEntry ?? 'the start'}) has a bad checksum`,
      );
      return;
    }
    const typeflag = String.fromCharCode(block[156] ?? 0x30);
    const sizeField = parseOctal(block.subarray(124, 136));
    if (sizeField === undefined) {
      this.fail(`corrupt: the tar header at byte ${headerAt} has an unreadable size`);
      return;
    }
    const magic = block.subarray(257, 263).toString('latin1');
    let name = cstr(block.subarray(0, 100));
    const prefix = magic.startsWith('ustar') ? cstr(block.subarray(345, 500)) : '';
    if (prefix && magic === 'ustar\0') name = `${prefix}/${name}`;
    const linkname = cstr(block.subarray(157, 257));
    const mode = parseOctal(block.subarray(100, 108)) ?? 0;

    // Meta entries: their data is collected, then applied to the next header.
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      const header: TarEntryHeader = { path: name, type: 'other', size: sizeField, mode, linkname };
      this.startData(header, undefined, typeflag);
      return;
    }
    const size = this.pax.size !== undefined ? Number(this.pax.size) : this.globalPax.size !== undefined ? Number(this.globalPax.size) : sizeField;
    const path = this.pax.path ?? this.gnuLongName ?? this.globalPax.path ?? name;
    const link = this.pax.linkpath ?? this.gnuLongLink ?? linkname;
    this.pax = {};
    this.gnuLongName = undefined;
    this.gnuLongLink = undefined;
    const type: TarEntryType =
      typeflag === '0' || typeflag === '\0' || typeflag === '7' ? 'file' : typeflag === '5' ? 'directory' : typeflag === '2' ? 'symlink' : typeflag === '1' ? 'hardlink' : 'other';
    // Only regular files (and unknown types) carry data blocks.
    const dataSize = type === 'directory' || type === 'symlink' || type === 'hardlink' ? 0 : size;
    const header: TarEntryHeader = { path, type, size: dataSize, mode, linkname: link };
    this.entries++;
    this.lastEntry = path;
    const sink = this.onEntry(header) ?? undefined;
    this.startData(header, sink, undefined);
  }

  private startData(header: TarEntryHeader, sink: TarEntrySink | undefined, metaType: string | undefined): void {
    const padding = (BLOCK - (header.size % BLOCK)) % BLOCK;
    const s = { kind: 'data' as const, header, remaining: header.size, padding, sink, meta: metaType ? [] : undefined, metaType: metaType ?? '' };
    this.state = s;
    if (header.size === 0) this.finishEntry(s);
  }

  private finishEntry(s: Extract<State, { kind: 'data' }>): void {
    if (s.meta) {
      const body = Buffer.concat(s.meta);
      if (s.metaType === 'x') this.pax = { ...this.pax, ...parsePax(body) };
      else if (s.metaType === 'g') this.globalPax = { ...this.globalPax, ...parsePax(body) };
      else if (s.metaType === 'L') this.gnuLongName = cstr(body);
      else if (s.metaType === 'K') this.gnuLongLink = cstr(body);
    } else {
      s.sink?.end();
    }
    this.state = s.padding > 0 ? { kind: 'padding', remaining: s.padding } : { kind: 'header' };
  }
}

function isZero(b: Buffer): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

function cstr(b: Buffer): string {
  const i = b.indexOf(0);
  return (i === -1 ? b : b.subarray(0, i)).toString('utf8');
}

function parseOctal(b: Buffer): number | undefined {
  // GNU base-256 for large numbers
  if (b.length > 0 && ((b[0] ?? 0) & 0x80) !== 0) {
    let v = 0;
    for (let i = 1; i < b.length; i++) v = v * 256 + (b[i] ?? 0);
    return v;
  }
  const s = b.toString('latin1').replace(/\0.*$/s, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) return undefined;
  return parseInt(s, 8);
}

function checksumOk(block: Buffer): boolean {
  const stored = parseOctal(block.subarray(148, 156));
  if (stored === undefined) return false;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
  return sum === stored;
}

function parsePax(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length) {
    const sp = body.indexOf(0x20, pos);
    if (sp === -1) break;
    const len = Number(body.subarray(pos, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= 0) break;
    const rec = body.subarray(sp + 1, pos + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    pos += len;
  }
  return out;
}
