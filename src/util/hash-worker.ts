import { Worker } from 'node:worker_threads';

/**
 * SHA-256 on a worker thread, for the second hash of a copy whose output is already hashed on the main
 * thread (the archive writer): each chunk is copied (a memcpy, about a tenth of hashing it) and hashed
 * on the other core. At most LIMIT bytes wait in the worker; `update` resolves once below that.
 * One worker per process, created on first use, holding the process open only while a hash is open.
 */
const LIMIT = 16 << 20;

const CODE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  let h = hashes.get(m.id);
  if (m.drop) { hashes.delete(m.id); return; }
  if (!h) { h = createHash('sha256'); hashes.set(m.id, h); }
  if (m.buf) { h.update(new Uint8Array(m.buf)); parentPort.postMessage({ id: m.id, ack: m.buf.byteLength }); return; }
  hashes.delete(m.id);
  parentPort.postMessage({ id: m.id, digest: h.digest('hex') });
});
`;

interface Reply {
  id: number;
  ack?: number;
  digest?: string;
}

let worker: Worker | undefined;
let open = 0;
let nextId = 0;
const handlers = new Map<number, { reply(m: Reply): void; fail(e: Error): void }>();

function theWorker(): Worker {
  if (!worker) {
    const w = new Worker(CODE, { eval: true });
    w.unref();
    w.on('message', (m: Reply) => handlers.get(m.id)?.reply(m));
    w.on('error', (e) => {
      for (const h of handlers.values()) h.fail(e);
    });
    w.on('exit', () => {
      if (worker === w) worker = undefined;
      for (const h of handlers.values()) h.fail(new Error('the hashing worker exited'));
    });
    worker = w;
  }
  return worker;
}

export class OffThreadSha256 {
  private readonly id = nextId++;
  private inFlight = 0;
  private wake: (() => void) | undefined;
  private settle: { resolve(hex: string): void; reject(e: Error): void } | undefined;
  private failure: Error | undefined;
  private closed = false;

  constructor() {
    if (open++ === 0) theWorker().ref();
    handlers.set(this.id, {
      reply: (m) => {
        if (m.ack !== undefined) {
          this.inFlight -= m.ack;
          if (this.inFlight <= LIMIT) this.wakeUp();
        } else if (m.digest !== undefined) this.settle?.resolve(m.digest);
      },
      fail: (e) => {
        this.failure = e;
        this.wakeUp();
        this.settle?.reject(e);
      },
    });
  }

  /** Hands a copy of `chunk` to the worker; waits only while more than LIMIT bytes are queued there. */
  async update(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    const copy = new ArrayBuffer(chunk.length);
    new Uint8Array(copy).set(chunk);
    this.inFlight += chunk.length;
    theWorker().postMessage({ id: this.id, buf: copy }, [copy]);
    while (this.inFlight > LIMIT && !this.failure) await new Promise<void>((r) => (this.wake = r));
    if (this.failure) throw this.failure;
  }

  /** The hex digest of everything given; closes the hash. */
  async digest(): Promise<string> {
    if (this.failure) throw this.failure;
    const p = new Promise<string>((resolve, reject) => (this.settle = { resolve, reject }));
    theWorker().postMessage({ id: this.id });
    try {
      return await p;
    } finally {
      this.close();
    }
  }

  /** Drops an unfinished hash (a copy that failed); safe after digest(). */
  dispose(): void {
    if (this.closed) return;
    worker?.postMessage({ id: this.id, drop: true });
    this.close();
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    handlers.delete(this.id);
    if (--open === 0) worker?.unref();
  }
}
