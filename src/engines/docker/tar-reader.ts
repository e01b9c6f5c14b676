import { TarStreamParser, type TarEntryHeader } from '../../archive/tar-parser.js';

/**
 * `docker save` output read as a pull-based stream: archive/tar-parser.ts's push parser (the project's
 * one tar reader; why hand-written is measured there) behind an async iterator. Each entry's body is an
 * async iterable that the caller consumes (or not: unread bytes are dropped before the next entry);
 * the source is read only as fast as the bodies are consumed, and at most one source chunk is held, so
 * memory does not grow with the size of the archive or its entries. A bad or cut tar stream throws
 * TarFormatError (with the parser's reason) where it is found. It replaced a second hand-written pull
 * reader with its own header parser at no measurable cost: 309 MiB, bodies consumed, CPU-time medians
 * of 5, two rounds, busy 2-core VM: 1 MiB chunks 139 / 99 ms (the old reader 140 / 85 ms), 64 KiB
 * chunks (docker's HTTP stream) 346 / 420 ms (old 358 / 317 ms).
 */
export interface TarEntry {
  path: string;
  /** 'file' | 'dir' | 'symlink' | 'hardlink' | 'other' */
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';
  size: number;
  linkpath: string;
  /** The entry's bytes; consume at most once. */
  body: AsyncIterable<Buffer>;
}

export class TarFormatError extends Error {}

/** An entry the parser has seen: the chunks of its data not yet taken by the consumer. */
interface Pending {
  header: TarEntryHeader;
  chunks: Buffer[];
  ended: boolean;
  discard: boolean;
}

/** Feeds the parser one more chunk of the source; false once there is no more tar data. */
type Pull = () => Promise<boolean>;

/** Iterates the entries of a tar stream. Consume (or abandon) each entry's body before asking for the next. */
export async function* readTar(src: AsyncIterable<Buffer | string>): AsyncGenerator<TarEntry> {
  const it = src[Symbol.asyncIterator]();
  const queue: Pending[] = [];
  const parser = new TarStreamParser((header) => {
    const p: Pending = { header, chunks: [], ended: false, discard: false };
    queue.push(p);
    return { data: (c) => void (p.discard || p.chunks.push(c)), end: () => void (p.ended = true) };
  });
  let done = false;
  const pull: Pull = async () => {
    if (done) return false;
    const r = await it.next();
    if (r.done) {
      done = true;
      const state = parser.end();
      if (!state.complete) throw new TarFormatError(state.problem ?? 'incomplete tar stream');
      return false;
    }
    parser.write(typeof r.value === 'string' ? Buffer.from(r.value) : r.value);
    if (parser.failure !== undefined) throw new TarFormatError(parser.failure);
    done = parser.atEnd; // the end-of-archive marker: the rest of the source is not read
    return true;
  };
  try {
    for (;;) {
      while (queue.length === 0) if (!(await pull())) return;
      const p = queue.shift()!;
      yield toEntry(p, pull);
      // Whatever the consumer left of this entry is dropped.
      p.discard = true;
      p.chunks.length = 0;
      while (!p.ended && (await pull())) p.chunks.length = 0;
    }
  } finally {
    await it.return?.();
  }
}

function toEntry(p: Pending, pull: Pull): TarEntry {
  const h = p.header;
  const type: TarEntry['type'] = h.type === 'directory' ? 'dir' : h.type;
  let iterating = false;
  const body: AsyncIterable<Buffer> = {
    [Symbol.asyncIterator]() {
      if (iterating) throw new Error('tar entry body read twice');
      iterating = true;
      return (async function* () {
        for (;;) {
          while (p.chunks.length > 0) yield p.chunks.shift()!;
          if (p.ended) return;
          if (!(await pull()) && !p.ended) throw new TarFormatError(`the tar stream ended inside ${h.path}`);
        }
      })();
    },
  };
  return { path: h.path.replace(/^\.\//, ''), type, size: h.size, linkpath: h.linkname, body };
}
