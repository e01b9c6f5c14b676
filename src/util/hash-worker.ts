import type { WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import { InternalError, fsError } from '../errors.js';
import { writeStaged, type Staged } from './fs.js';

/*
 * SHA-256 of files on a second thread, read back from the page cache by the thread itself (no chunk
 * crosses between threads), while the main thread goes on writing and downloading. A session follows
 * a file as it is written: the writer reports how many bytes are on the file (`written`), the thread
 * hashes them as it gets to them, and a byte range declared before it was written (the images archive
 * inside a bundle tarball) gets its own digest from the same reads.
 *
 * Measured on the 2-core VM (2026-12-02 and 2026-12-03, six-bundle build, 537 MB of tarballs, 135
 * blobs): hashing every tarball byte on the main thread as it was written cost ~0.46 s of its CPU
 * profile; with every tarball hashed here, the downloads' verification (~0.42 s) and the images
 * archive's digest (~0.34 s) were still main-thread hashing, and taking both away made the build
 * 4.81 → 4.09 s (medians of 5, interleaved). Handing the chunks themselves to a worker was tried and
 * dropped: the copies and GC cost more than reading them back.
 */
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { openSync, readSync, closeSync } = require('node:fs');
const { createHash } = require('node:crypto');
const buf = Buffer.allocUnsafe(1 << 20);
const sessions = new Map();
const errorOf = (e) => ({ message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, path: e.path });
function settleRanges(s) {
  s.ranges = s.ranges.filter((r) => {
    if (s.pos < r.end) return true;
    parentPort.postMessage({ id: r.id, hex: r.h.digest('hex') });
    return false;
  });
}
function advance(s, n) {
  if (s.failed) return;
  try {
    if (s.fd === undefined) s.fd = openSync(s.file, 'r');
    while (s.pos < n) {
      const got = readSync(s.fd, buf, 0, Math.min(buf.length, n - s.pos), s.pos);
      if (got === 0) {
        if (n === Infinity) break;
        throw new Error(s.file + ' ends at byte ' + s.pos + ', but ' + n + ' were written');
      }
      const chunk = got === buf.length ? buf : buf.subarray(0, got);
      s.h.update(chunk);
      for (const r of s.ranges) {
        const a = Math.max(r.start, s.pos), b = Math.min(r.end, s.pos + got);
        if (a < b) r.h.update(chunk.subarray(a - s.pos, b - s.pos));
      }
      s.pos += got;
      settleRanges(s);
    }
  } catch (e) {
    s.failed = errorOf(e);
    for (const r of s.ranges) parentPort.postMessage({ id: r.id, error: s.failed });
    s.ranges = [];
  }
}
function close(s) {
  sessions.delete(s.sid);
  if (s.fd !== undefined) closeSync(s.fd);
}
parentPort.on('message', (m) => {
  if (m.op === 'open') {
    sessions.set(m.sid, { sid: m.sid, file: m.file, fd: undefined, pos: 0, h: createHash('sha256'), ranges: [], failed: undefined });
    return;
  }
  const s = sessions.get(m.sid);
  if (!s) return;
  if (m.op === 'to') advance(s, m.n);
  else if (m.op === 'range') {
    if (s.failed) return parentPort.postMessage({ id: m.id, error: s.failed });
    s.ranges.push({ id: m.id, start: m.start, end: m.end, h: createHash('sha256') });
    settleRanges(s);
  } else if (m.op === 'finish') {
    advance(s, Infinity);
    parentPort.postMessage(s.failed ? { id: m.id, error: s.failed } : { id: m.id, hex: s.h.digest('hex'), size: s.pos });
    close(s);
  } else if (m.op === 'close') close(s);
});
`;

interface Reply {
  id: number;
  hex?: string;
  size?: number;
  error?: { message: string; code?: string; errno?: number; syscall?: string; path?: string };
}

interface Pending {
  resolve(r: { hex: string; size?: number }): void;
  reject(e: Error): void;
}

/** One started thread: its replies awaited, and why it ended once it did. */
interface Thread {
  worker: Worker;
  waiting: Map<number, Pending>;
  ended?: Error;
}

let current: Thread | undefined;
let nextId = 0;

function start(): Thread {
  // execArgv []: plain CommonJS needs none of the parent's loader hooks (tsx in the tests).
  const t: Thread = { worker: new Worker(SOURCE, { eval: true, execArgv: [] }), waiting: new Map() };
  t.worker.on('message', (m: Reply) => {
    const p = t.waiting.get(m.id);
    if (!p) return;
    t.waiting.delete(m.id);
    if (t.waiting.size === 0) t.worker.unref();
    // The thread's fs error keeps its code (ENOENT, EIO, …) for fsError.
    if (m.error) p.reject(Object.assign(new Error(m.error.message), m.error));
    else p.resolve({ hex: m.hex!, ...(m.size !== undefined ? { size: m.size } : {}) });
  });
  const fail = (e: Error) => {
    if (current === t) current = undefined;
    t.ended ??= e;
    for (const p of t.waiting.values()) p.reject(e);
    t.waiting.clear();
  };
  t.worker.on('error', fail);
  t.worker.on('exit', (code) => fail(new Error(`the hashing thread exited (code ${code})`)));
  // Held only while a reply is awaited (ask): a session that never asks (a download that failed) must
  // not keep the process alive. (After the listeners: adding one holds the thread again.)
  t.worker.unref();
  return t;
}

/** A reply awaited from the thread under `id` (the thread keeps the process alive only while one is). */
function ask(t: Thread, id: number, message: object): Promise<{ hex: string; size?: number }> {
  if (t.ended) return Promise.reject(t.ended);
  t.worker.ref();
  return new Promise((resolve, reject) => {
    t.waiting.set(id, { resolve, reject });
    t.worker.postMessage({ ...message, id });
  });
}

/** Stops waiting for the reply `id` (its session was closed: the thread no longer answers it). */
function forget(t: Thread, id: number, why: Error): void {
  const p = t.waiting.get(id);
  if (!p) return;
  t.waiting.delete(id);
  if (t.waiting.size === 0) t.worker.unref();
  p.reject(why);
}

/**
 * The thread is told of written bytes in steps of this much (or at a declared range's end): each message
 * cost the main thread ~0.1 ms, and a report per 512 KiB download write plus one per tarball every 20 ms
 * came to ~160 ms of the six-bundle build's main thread (2026-12-03 CPU profile).
 */
const REPORT_STEP = 4 << 20;

/** Hashing of one file, on the hashing thread, as it is written. */
export interface FileHashing {
  /** Bytes [0, n) are on the file (written and returned from their write): hash them. Only growth counts. */
  written(n: number): void;
  /**
   * SHA-256 (hex) of bytes [start, end), from the same reads; declared before any byte from `start` on
   * was reported written. Resolves once those bytes were reported and hashed.
   */
  range(start: number, end: number): Promise<string>;
  /** The whole file as it is now (complete: its writes returned): digest (hex) and size. Ends the session. */
  finish(): Promise<{ hex: string; size: number }>;
  /** Drops the session; a pending `range` rejects. */
  close(): void;
}

/** A session on the hashing thread (started on first use) for `file`, which it opens at its first read. */
export function hashFileAsWritten(file: string): FileHashing {
  current ??= start();
  const t = current;
  const sid = nextId++;
  /** Bytes the caller reported written, and how many of them the thread was told of. */
  let reported = 0;
  let posted = 0;
  /** The declared ranges: their replies awaited, and where each ends. */
  const ranges: { id: number; end: number }[] = [];
  let done = false;
  t.worker.postMessage({ op: 'open', sid, file });
  const post = (m: object) => {
    if (!t.ended) t.worker.postMessage({ ...m, sid });
  };
  return {
    written(n) {
      if (done || n <= reported) return;
      reported = n;
      // Told in steps (each message costs the main thread), and as soon as a declared range is complete.
      if (reported - posted < REPORT_STEP && !ranges.some((r) => r.end > posted && r.end <= reported)) return;
      posted = reported;
      post({ op: 'to', n: posted });
    },
    range(start, end) {
      if (start < reported || end < start) throw new InternalError(`hash range [${start}, ${end}) of ${file} declared after byte ${reported} was reported`);
      const id = nextId++;
      ranges.push({ id, end });
      return ask(t, id, { op: 'range', sid, start, end }).then((r) => r.hex);
    },
    async finish() {
      if (done) throw new InternalError(`hashing of ${file} finished twice`);
      done = true;
      const r = await ask(t, nextId++, { op: 'finish', sid });
      return { hex: r.hex, size: r.size! };
    },
    close() {
      if (done) return;
      done = true;
      post({ op: 'close' });
      for (const r of ranges) forget(t, r.id, new Error(`hashing of ${file} was stopped`));
    },
  };
}

/**
 * SHA-256 (hex) and size of the file, read and hashed on the hashing thread (started on first use; it
 * keeps the process alive only while a hash is pending). The file must not change until this settles.
 */
export function sha256FileOffThread(file: string): Promise<{ hex: string; size: number }> {
  return hashFileAsWritten(file).finish();
}

/**
 * A session for the file `out` writes into (`path`): what the stream has written is reported every
 * 20 ms (its `bytesWritten` counts bytes whose write returned). `finish()` once the stream is finished.
 */
export function hashWhileWriting(out: WriteStream, path: string): FileHashing {
  const h = hashFileAsWritten(path);
  const tick = setInterval(() => h.written(out.bytesWritten), 20);
  tick.unref();
  return {
    written: (n) => h.written(n),
    range: (s, e) => h.range(s, e),
    finish: () => {
      clearInterval(tick);
      return h.finish();
    },
    close: () => {
      clearInterval(tick);
      h.close();
    },
  };
}

/**
 * writeStaged, with the file hashed on the hashing thread as it is written (`write` gets the session, for
 * ranges of the file): the staged result carries the complete file's SHA-256 (hex) and size. A failure to
 * read the file back removes it and is reported as such.
 */
export async function writeStagedHashed<T>(
  finalPath: string,
  write: (out: WriteStream, hashing: FileHashing) => Promise<T>,
  opts: { durable?: boolean } = {},
): Promise<Staged<{ value: T; sha256: string; size: number }>> {
  let hashing: FileHashing | undefined;
  let staged: Staged<T>;
  try {
    staged = await writeStaged(
      finalPath,
      (out, tmp) => {
        hashing = hashWhileWriting(out, tmp);
        return write(out, hashing);
      },
      opts,
    );
  } catch (e) {
    hashing?.close();
    throw e;
  }
  try {
    const { hex, size } = await hashing!.finish();
    return { ...staged, result: { value: staged.result, sha256: hex, size } };
  } catch (e) {
    await staged.discard();
    throw fsError(e, finalPath, 'reading back', dirname(finalPath));
  }
}
