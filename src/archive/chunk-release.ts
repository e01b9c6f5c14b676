import { WriteStream } from 'node:fs';
import type { Writable } from 'node:stream';

/*
 * Whether a stream is done with a chunk once it calls that chunk's write callback, so the writer may
 * refill the same buffer. A file stream is (its callback fires when fs.write returned); a PassThrough is
 * not (the chunk waits in its readable side), nor is a stream we know nothing about. The archive writers
 * copy cached files through a few reused buffers when their output is such a stream (TarWriter.addFile),
 * instead of a fresh 1 MiB buffer per read: measured on the 2-core VM (2026-12-03, warm `images` build of
 * the 163 MB cloud set), the fresh buffers cost ~0.08 s of V8 garbage collection of ~0.7 s.
 */
const releasing = new WeakSet<Writable>();

/** True when `out` releases a chunk at its write callback: a file stream, or a stream marked so. */
export function releasesOnCallback(out: Writable): boolean {
  return out instanceof WriteStream || releasing.has(out);
}

/**
 * Marks `stream` as releasing its chunks at their write callbacks: only a stream that calls back once its
 * own output released the chunk (TarWriter's streamed-entry sink, the archive's hashing forwarder).
 */
export function markReleasing<T extends Writable>(stream: T): T {
  releasing.add(stream);
  return stream;
}

/** Writes `chunk` into `out`; resolves once `out` called back (for a releasing `out`: the chunk is free again). */
export function writeReleased(out: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(chunk, (e) => (e ? reject(e) : resolve()));
  });
}

/**
 * The copy buffers of every archive writer in this process (TarWriter.addFile over a releasing output):
 * a fixed number of 1 MiB buffers, lent one at a time and given back once the output released the chunk;
 * a writer that finds none free waits for the next, first come first served. Shared, so that memory does
 * not grow with the number of archives written at once: a six-bundle build writes up to twelve (each
 * bundle's tarball and the images archive inside it), which with four buffers per writer peaked at
 * 176-187 MB RSS, with one at 157-159 MB (2026-12-03, `bench/run.ts --six` fixtures; build time unchanged).
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly waiting: ((b: Buffer) => void)[] = [];
  private made = 0;

  constructor(
    readonly count: number,
    readonly size: number,
  ) {}

  /** A buffer of `size` bytes, once one is free (made on first need, up to `count`). */
  acquire(): Promise<Buffer> {
    const b = this.free.pop();
    if (b) return Promise.resolve(b);
    if (this.made < this.count) {
      this.made++;
      return Promise.resolve(Buffer.allocUnsafeSlow(this.size));
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Gives `buf` back: to the longest waiting writer, else to the free list. */
  release(buf: Buffer): void {
    const next = this.waiting.shift();
    if (next) next(buf);
    else this.free.push(buf);
  }

  /** Buffers made so far (for tests: never more than `count`). */
  get allocated(): number {
    return this.made;
  }
}

/** The pool TarWriter copies files through: 4 × 1 MiB for the whole process. */
export const COPY_BUFFERS = new BufferPool(4, 1 << 20);
