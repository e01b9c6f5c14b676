import { createReadStream } from 'node:fs';
import { Parser, type ReadEntry } from 'tar';

/**
 * A layer read as a stream (node-tar's Parser, gzip detected by it) into a small index of its entries
 * (path, type, link target, and the first bytes of executable files), and paths resolved through a
 * stack of such indexes as the container's root filesystem would hold them (the topmost layer decides;
 * `.wh.` whiteouts and `.wh..wh..opq` opaque directories hide lower layers; symlinks are followed). A
 * layer not read yet stops a resolution with `NeedLayer`, so a lower layer is read only when needed.
 */
export interface LayerEntry {
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';
  mode: number;
  link?: string;
  /** First HEAD_BYTES bytes of a regular file with an executable bit (ELF header, `#!` line). */
  head?: Buffer;
}

export interface LayerIndex {
  entries: Map<string, LayerEntry>;
  /** Paths deleted by `.wh.<name>` in this layer. */
  whiteouts: Set<string>;
  /** Directories made opaque by `.wh..wh..opq` in this layer (lower layers' content hidden). */
  opaque: Set<string>;
  /** The layer could not be read as a tar (e.g. zstd, which Node 20 cannot decompress): why. */
  unreadable?: string;
}

export const HEAD_BYTES = 256;

const clean = (p: string) => p.replace(/^(\.\/|\/)+/, '').replace(/\/+$/, '').replace(/\/+/g, '/');

/** Builds a LayerIndex by writing a layer's bytes (gzip or plain tar) into it as they stream by. */
export class LayerIndexer {
  readonly index: LayerIndex = { entries: new Map(), whiteouts: new Set(), opaque: new Set() };
  private readonly parser: Parser;
  private readonly finished: Promise<void>;
  private first = true;
  private failed = false;

  constructor() {
    this.parser = new Parser({
      strict: false,
      onReadEntry: (e: ReadEntry) => this.entry(e),
    });
    this.parser.on('warn', (code: string, message: string) => {
      if (/TAR_BAD_ARCHIVE|TAR_ABORT|zlib|Z_/i.test(`${code} ${message}`)) this.fail(`not a readable tar layer (${message})`);
    });
    this.parser.on('error', (e: Error) => this.fail(`not a readable tar layer (${e.message})`));
    this.finished = new Promise((resolve) => {
      this.parser.on('end', () => resolve());
      this.parser.on('close', () => resolve());
      this.parser.on('error', () => resolve());
    });
  }

  private fail(why: string): void {
    if (!this.index.unreadable) this.index.unreadable = why;
    this.failed = true;
  }

  private entry(e: ReadEntry): void {
    const path = clean(e.path);
    const slash = path.lastIndexOf('/');
    const dir = slash === -1 ? '' : path.slice(0, slash);
    const base = path.slice(slash + 1);
    if (base === '.wh..wh..opq') {
      this.index.opaque.add(dir);
      e.resume();
      return;
    }
    if (base.startsWith('.wh.')) {
      this.index.whiteouts.add(dir ? `${dir}/${base.slice(4)}` : base.slice(4));
      e.resume();
      return;
    }
    const type: LayerEntry['type'] =
      e.type === 'File' || e.type === 'OldFile' || e.type === 'ContiguousFile'
        ? 'file'
        : e.type === 'Directory'
          ? 'dir'
          : e.type === 'SymbolicLink'
            ? 'symlink'
            : e.type === 'Link'
              ? 'hardlink'
              : 'other';
    const rec: LayerEntry = { type, mode: e.mode ?? 0 };
    if (type === 'symlink' || type === 'hardlink') rec.link = e.linkpath ?? '';
    if (type === 'hardlink') {
      const target = this.index.entries.get(clean(rec.link ?? ''));
      if (target?.head) rec.head = target.head;
    }
    this.index.entries.set(path, rec);
    if (path === '') return void e.resume();
    if (type === 'file' && (rec.mode & 0o111) !== 0) {
      const parts: Buffer[] = [];
      let got = 0;
      e.on('data', (c: Buffer) => {
        if (got < HEAD_BYTES) {
          const part = c.subarray(0, HEAD_BYTES - got);
          parts.push(Buffer.from(part));
          got += part.length;
        }
      });
      e.on('end', () => {
        rec.head = Buffer.concat(parts);
      });
    } else e.resume();
  }

  write(chunk: Buffer): void {
    if (this.failed) return;
    if (this.first && chunk.length > 0) {
      this.first = false;
      // zstd frames (0x28 b5 2f fd): Node 20's zlib cannot read them.
      if (chunk.length >= 4 && chunk.readUInt32LE(0) === 0xfd2fb528) return this.fail('a zstd-compressed layer (not readable with Node 20)');
    }
    try {
      this.parser.write(chunk);
    } catch (e) {
      this.fail(`not a readable tar layer (${(e as Error).message})`);
    }
  }

  async end(): Promise<LayerIndex> {
    if (!this.failed) {
      try {
        this.parser.end();
      } catch (e) {
        this.fail(`not a readable tar layer (${(e as Error).message})`);
      }
      await this.finished;
    }
    return this.index;
  }
}

/** Indexes a layer file (as a stream). */
export async function indexLayerFile(file: string, signal?: AbortSignal): Promise<LayerIndex> {
  const ix = new LayerIndexer();
  for await (const chunk of createReadStream(file, signal ? { signal } : {})) ix.write(chunk as Buffer);
  return ix.end();
}

/** Thrown by a resolution that needs layer `n` (bottom = 0) read first. */
export class NeedLayer {
  constructor(readonly n: number) {}
}

/** The layers of one image, bottom first; `undefined` for a layer not read yet. */
export type LayerStack = (LayerIndex | undefined)[];

function lookup(layers: LayerStack, path: string): LayerEntry | undefined {
  const ancestors: string[] = [];
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) ancestors.push(path.slice(0, i));
  for (let n = layers.length - 1; n >= 0; n--) {
    const l = layers[n];
    if (!l) throw new NeedLayer(n);
    const e = l.entries.get(path);
    if (e) return e;
    if (l.whiteouts.has(path) || ancestors.some((a) => l.whiteouts.has(a))) return undefined;
    if (l.opaque.has('') || ancestors.some((a) => l.opaque.has(a))) return undefined;
  }
  return undefined;
}

export type Resolved = { path: string; entry: LayerEntry } | { path: string; missing: string };

/** Resolves an absolute path in the image's merged filesystem, following symlinks (at most 40). */
export function resolvePath(layers: LayerStack, path: string): Resolved {
  let parts = path.split('/').filter((p) => p !== '' && p !== '.');
  let cur: string[] = [];
  let hops = 0;
  for (let i = 0; i < parts.length; i++) {
    const comp = parts[i]!;
    if (comp === '..') {
      cur.pop();
      continue;
    }
    const cand = [...cur, comp].join('/');
    const e = lookup(layers, cand);
    const last = i === parts.length - 1;
    if (e?.type === 'symlink') {
      if (++hops > 40) return { path: `/${cand}`, missing: 'too many levels of symbolic links' };
      const target = e.link ?? '';
      parts = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...parts.slice(i + 1)];
      if (target.startsWith('/')) cur = [];
      i = -1;
      continue;
    }
    if (last) return e ? { path: `/${cand}`, entry: e } : { path: `/${cand}`, missing: 'no such file in the image' };
    if (e && e.type !== 'dir') return { path: `/${cand}`, missing: 'not a directory' };
    cur = [...cur, comp];
  }
  return { path: `/${cur.join('/')}`, missing: 'is a directory' };
}
