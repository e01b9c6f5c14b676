import type { IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { abortError, abortErrorOf } from '../../errors.js';
import { debug, safeUrl, since } from '../../util/debug.js';
import { TransientNetworkError } from '../../util/retry.js';
import type { HttpResponse } from '../../oci/blob-cache.js';

export type { HttpResponse };

/*
 * Blob GETs over HTTP/1.1 on sockets that read into reused buffers (net/tls `onread`), the bodies handed
 * out as slices of those buffers. Node's http client allocates a fresh 64 KiB buffer per socket read and
 * pushes every chunk through its parser and a stream; downloading the 45 blobs (155 MiB) of the bench's
 * docker.io set, 4 at once, hashed and written as the blob cache does, took (2026-12-03, 2-core VM,
 * medians of 5, bench/.work/exp dl-mode): node http 0.78 s, 0.70 s user + 0.29 s sys; reused 256 KiB
 * buffers 0.50 s, 0.35 s user + 0.22 s sys. undici 6.29 measured no faster than node http (2026-12-03).
 *
 * Only what a registry blob GET needs: GET with our headers, keep-alive, a response of any status framed
 * by Content-Length (its body in the reused buffers), chunked or read until the connection closes (those
 * bodies as copies: registries and CDNs send blobs with a Content-Length). Redirects, auth and retries
 * stay with RegistryClient.
 */

export interface FastSendOptions {
  headers: Record<string, string>;
  /** TLS options for an https URL (CA, client certificate, verification), and a key naming them. */
  tls?: { key: string; options: tls.ConnectionOptions } | undefined;
  signal?: AbortSignal | undefined;
  timeoutMs?: number | undefined;
}

const READ_SIZE = 256 << 10;
/** Read buffers one connection may lend at once (2 MiB); its reading pauses until one is given back. */
const BUFFERS = 8;
/**
 * A read smaller than this is handed out as a copy and its buffer reused at once (a slow server trickling
 * a few KB per read, TLS records of 16 KiB): only big reads are lent, so the slices out at once always add
 * up to at least BUFFERS × 64 KiB = 512 KiB, the blob cache's write batch, which it then writes and gives
 * back. (Lending every read stalled a throttled download: 8 small slices never made a batch.)
 */
const MIN_LENT = 64 << 10;
const MAX_HEAD = 64 << 10;
/** Read buffers kept for reuse by one pool, all connections together (8 MiB); more are left to the GC. */
const KEPT_BUFFERS = 32;
/** Idle connections kept per origin; more are closed (each holds the buffer of its next read). */
const KEPT_IDLE = 8;

/** The read buffers of one pool's connections: lent per read, kept for reuse up to KEPT_BUFFERS. */
class ReadBuffers {
  private readonly free: Buffer[] = [];
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(READ_SIZE);
  }
  give(b: Buffer): void {
    if (this.free.length < KEPT_BUFFERS) this.free.push(b);
  }
}
const HEAD_END = Buffer.from('\r\n\r\n');

/** Keep-alive connections per origin (and TLS setting), each with its own read buffers. */
export class FastPool {
  private readonly idle = new Map<string, Conn[]>();
  private readonly all = new Set<Conn>();
  private readonly buffers = new ReadBuffers();
  private closed = false;

  /** GET `url`; resolves with the response head (body unread). */
  async get(url: URL, opts: FastSendOptions): Promise<HttpResponse> {
    if (opts.signal?.aborted) throw abortErrorOf(opts.signal);
    const key = `${url.protocol}//${url.host}|${opts.tls?.key ?? ''}`;
    const t0 = Date.now();
    for (let attempt = 0; ; attempt++) {
      // A retry goes over a new connection: the other idle ones may be as stale as the first.
      const reused = attempt === 0 ? this.take(key) : undefined;
      const conn = reused ?? this.connect(url, key, opts);
      try {
        const res = await conn.request(url, opts);
        debug('http', `GET ${safeUrl(url)} -> ${res.statusCode}${res.headers['content-length'] ? `, ${res.headers['content-length']} bytes` : ''} (${since(t0)})`);
        return res;
      } catch (e) {
        // A kept-alive connection the server closed meanwhile: once more on a new one (GET is idempotent).
        if (reused && conn.failedBeforeResponse && attempt === 0 && !opts.signal?.aborted) continue;
        debug('http', `GET ${safeUrl(url)} failed: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (${since(t0)})`);
        throw e;
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const c of this.all) c.destroy();
    this.all.clear();
    this.idle.clear();
  }

  private take(key: string): Conn | undefined {
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const c = list.pop()!;
      if (c.usable) return c;
    }
    return undefined;
  }

  private connect(url: URL, key: string, opts: FastSendOptions): Conn {
    const c = new Conn(url, opts.tls?.options, this.buffers, (done) => {
      if (this.closed || !done.usable || (this.idle.get(key)?.length ?? 0) >= KEPT_IDLE) {
        done.destroy(); // its onGone takes it out of `all`
        return;
      }
      let list = this.idle.get(key);
      if (!list) this.idle.set(key, (list = []));
      done.rest();
      list.push(done);
    });
    c.onGone = () => this.all.delete(c);
    this.all.add(c);
    return c;
  }
}

type HeadResult = { status: number; headers: IncomingHttpHeaders; keepAlive: boolean };

/** One connection: one request at a time; reads go into its reused buffers. */
class Conn {
  private readonly sock: net.Socket;
  /** Buffers lent out in body slices, not given back yet. */
  private lent = 0;
  private paused = false;
  private dead = false;
  private head: Buffer[] = [];
  private headBytes = 0;
  private current: FastResponse | undefined;
  private onHead: { resolve(r: FastResponse): void; reject(e: Error): void; url: URL; done: () => void } | undefined;
  private remaining = 0;
  private framing: 'length' | 'chunked' | 'close' = 'length';
  private readonly chunk = { state: 'size' as 'size' | 'data' | 'data-end' | 'trailer', line: '', left: 0 };
  private keepAlive = true;
  private connected: Promise<void>;
  private connectFailed: (e: Error) => void = () => {};
  /** The last request failed before any byte of its response arrived. */
  failedBeforeResponse = false;
  onGone: () => void = () => {};

  constructor(
    url: URL,
    tlsOpts: tls.ConnectionOptions | undefined,
    private readonly buffers: ReadBuffers,
    private readonly idle: (c: Conn) => void,
  ) {
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const onread: net.OnReadOpts = { buffer: () => this.nextBuffer(), callback: (n: number, buf: Uint8Array) => this.onRead(n, buf as Buffer) };
    // tls.connect takes `onread` too when it makes the socket itself (node docs, tls.connect options);
    // @types/node does not list it there.
    this.sock =
      url.protocol === 'https:'
        ? tls.connect({ host, port, ...(net.isIP(host) ? {} : { servername: host }), ALPNProtocols: ['http/1.1'], ...tlsOpts, onread } as tls.ConnectionOptions)
        : net.connect({ host, port, onread });
    // Settled by the connect, or by fail(): a socket destroyed while it connects (an abort) emits neither
    // 'connect' nor 'error', and a request waiting for it must not wait forever.
    this.connected = new Promise((resolve, reject) => {
      this.sock.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => resolve());
      this.connectFailed = reject;
    });
    this.connected.catch(() => {});
    this.sock.on('error', (e) => this.fail(e));
    this.sock.on('end', () => this.ended());
    this.sock.on('close', () => this.fail(new TransientNetworkError('the connection was closed', 'ECONNRESET')));
    this.sock.on('timeout', () => this.fail(new TransientNetworkError(`no data from ${url.host} for ${Math.round(this.sock.timeout! / 1000)}s`, 'ETIMEDOUT')));
  }

  /** Idle: does not keep the process alive (as node's agent does with its free sockets). */
  rest(): void {
    this.sock.setTimeout(0);
    this.sock.unref();
  }

  get usable(): boolean {
    return !this.dead && this.keepAlive && !this.current && !this.onHead;
  }

  async request(url: URL, opts: FastSendOptions): Promise<HttpResponse> {
    this.failedBeforeResponse = true;
    this.sock.ref();
    const signal = opts.signal;
    const onAbort = () => this.fail(abortErrorOf(signal));
    signal?.addEventListener('abort', onAbort, { once: true });
    this.sock.setTimeout(opts.timeoutMs ?? 60_000);
    try {
      await this.connected;
      const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `host: ${url.host}`, 'accept-encoding: identity', 'connection: keep-alive'];
      for (const [k, v] of Object.entries(opts.headers)) lines.push(`${k}: ${v}`);
      const done = () => {
        signal?.removeEventListener('abort', onAbort);
        this.sock.setTimeout(0);
      };
      // The response is set up in the read callback that completes its head (headChunk → start), so that
      // body bytes read right after it, in the same turn, already have their response.
      const res = await new Promise<FastResponse>((resolve, reject) => {
        this.onHead = { resolve, reject, url, done };
        this.sock.write(`${lines.join('\r\n')}\r\n\r\n`);
      });
      this.failedBeforeResponse = false;
      return res;
    } catch (e) {
      signal?.removeEventListener('abort', onAbort);
      throw e;
    }
  }

  /** Closes the connection; a request still on it fails (never waits for a socket that is gone). */
  destroy(): void {
    this.fail(abortError('the connection was closed'));
  }

  private nextBuffer(): Buffer {
    return this.buffers.take();
  }

  private release(buf: Buffer): void {
    this.lent--;
    this.buffers.give(buf);
    if (this.paused && !this.dead) {
      this.paused = false;
      this.sock.resume();
    }
  }

  /** Returns false to stop reading until a buffer is given back. */
  private onRead(n: number, buf: Buffer): boolean {
    if (this.onHead) {
      this.headChunk(buf.subarray(0, n));
      this.buffers.give(buf);
      return true;
    }
    if (this.current && !this.current.finished) {
      if (n < MIN_LENT) {
        this.body(Buffer.from(buf.subarray(0, n)), undefined);
        this.buffers.give(buf);
      } else this.body(buf.subarray(0, n), buf);
    } else {
      // Bytes nobody asked for: the connection is not in step with its requests.
      this.buffers.give(buf);
      this.fail(new TransientNetworkError('the server sent data after the response', 'ECONNRESET'));
      return false;
    }
    if (this.lent >= BUFFERS) {
      this.paused = true;
      return false;
    }
    return true;
  }

  private headChunk(data: Buffer): void {
    // A copy: the read buffer goes back to the pool at once (heads are small).
    this.head.push(Buffer.from(data));
    this.headBytes += data.length;
    const all = this.head.length === 1 ? this.head[0]! : Buffer.concat(this.head, this.headBytes);
    const end = all.indexOf(HEAD_END);
    if (end < 0) {
      if (this.headBytes > MAX_HEAD) this.fail(new TransientNetworkError('response head too large', 'EPROTO'));
      else this.head = [all];
      return;
    }
    this.head = [];
    this.headBytes = 0;
    const parsed = parseHead(all.subarray(0, end).toString('latin1'));
    const waiter = this.onHead!;
    this.onHead = undefined;
    if (!parsed) {
      const e = new TransientNetworkError('malformed HTTP response', 'EPROTO');
      this.fail(e);
      waiter.reject(e);
      return;
    }
    const rest = all.length > end + 4 ? all.subarray(end + 4) : undefined;
    let res: FastResponse;
    try {
      res = this.start(parsed, waiter.url, waiter.done);
    } catch (e) {
      this.fail(e as Error);
      waiter.reject(e as Error);
      return;
    }
    waiter.resolve(res);
    if (rest) this.body(rest, undefined);
    else if (this.framing === 'length' && this.remaining === 0) this.finish();
  }

  /** The response of a head just read: its framing, and it is the connection's current one. */
  private start(head: HeadResult, url: URL, done: () => void): FastResponse {
    const len = head.headers['content-length'];
    const te = String(head.headers['transfer-encoding'] ?? '').toLowerCase();
    this.keepAlive = head.keepAlive;
    if (te !== '') {
      // RFC 9112 6.1: chunked is the final coding; anything else is not a framing we can read on.
      if (te.split(',').pop()!.trim() !== 'chunked') throw new TransientNetworkError(`unsupported Transfer-Encoding '${te}' from ${url.host}`, 'EPROTO');
      this.framing = 'chunked';
      Object.assign(this.chunk, { state: 'size', line: '', left: 0 });
    } else if (len !== undefined) {
      if (!/^\d+$/.test(len)) throw new TransientNetworkError(`invalid Content-Length '${len}' from ${url.host}`, 'EPROTO');
      this.framing = 'length';
      this.remaining = Number(len);
    } else if (head.status === 204 || head.status === 304) {
      this.framing = 'length';
      this.remaining = 0;
    } else {
      // No length: the body ends when the server closes the connection (RFC 9112 6.3, item 8).
      this.framing = 'close';
      this.keepAlive = false;
    }
    const res = new FastResponse(head.status, head.headers, (r) => this.release(r), (e) => this.fail(e ?? abortError()));
    res.whenDone = done;
    this.current = res;
    return res;
  }

  /** Body bytes: `owner` is the pooled buffer they are in (undefined: a copy of their own). */
  private body(data: Buffer, owner: Buffer | undefined): void {
    const res = this.current!;
    if (this.framing !== 'length') {
      // Copies: the read buffer goes back at once.
      const copy = owner ? Buffer.from(data) : data;
      if (owner) this.buffers.give(owner);
      if (this.framing === 'close') res.push(copy, undefined);
      else this.dechunk(copy, res);
      return;
    }
    if (data.length > this.remaining) {
      // More than Content-Length: keep what was announced, never reuse this connection.
      data = data.subarray(0, this.remaining);
      this.keepAlive = false;
    }
    this.remaining -= data.length;
    if (data.length > 0) {
      if (owner) this.lent++;
      res.push(data, owner);
    } else if (owner) this.buffers.give(owner);
    if (this.remaining === 0) this.finish();
  }

  /** Chunked transfer coding (RFC 9112 7.1): sizes in hex, extensions and trailers skipped. */
  private dechunk(data: Buffer, res: FastResponse): void {
    const c = this.chunk;
    let i = 0;
    while (i < data.length && this.current === res) {
      if (c.state === 'data') {
        const n = Math.min(c.left, data.length - i);
        res.push(data.subarray(i, i + n), undefined);
        i += n;
        c.left -= n;
        if (c.left === 0) c.state = 'data-end';
        continue;
      }
      const nl = data.indexOf(0x0a, i);
      const end = nl < 0 ? data.length : nl + 1;
      c.line += data.subarray(i, end).toString('latin1');
      i = end;
      if (nl < 0) {
        if (c.line.length > 4096) this.fail(new TransientNetworkError('chunked body: line too long', 'EPROTO'));
        continue;
      }
      const line = c.line.replace(/\r?\n$/, '');
      c.line = '';
      if (c.state === 'data-end') {
        if (line !== '') return this.fail(new TransientNetworkError('chunked body: no line end after a chunk', 'EPROTO'));
        c.state = 'size';
      } else if (c.state === 'size') {
        const m = /^([0-9a-fA-F]+)/.exec(line);
        if (!m) return this.fail(new TransientNetworkError('chunked body: bad chunk size', 'EPROTO'));
        c.left = parseInt(m[1]!, 16);
        c.state = c.left === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        // The empty line after the trailers: the body is complete.
        if (i < data.length) this.keepAlive = false;
        this.finish();
      }
    }
  }

  /** The server closed the connection: the end of a body read until close, else a failure. */
  ended(): void {
    if (this.current && this.framing === 'close') this.finish();
  }

  private finish(): void {
    const res = this.current!;
    this.current = undefined;
    res.end();
    this.idle(this);
  }

  private fail(e: Error): void {
    const wasDead = this.dead;
    this.dead = true;
    this.connectFailed(e);
    if (this.onHead) {
      const w = this.onHead;
      this.onHead = undefined;
      w.reject(e);
    }
    if (this.current) {
      const r = this.current;
      this.current = undefined;
      r.error(e);
    }
    if (!wasDead) {
      this.sock.destroy();
      this.onGone();
    }
  }
}

/** Status line and headers; header names lower-case, repeated ones joined with ", " (as node does, set-cookie aside). */
function parseHead(text: string): HeadResult | undefined {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0] ?? '');
  if (!m) return undefined;
  const headers: IncomingHttpHeaders = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) return undefined;
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    if (name === 'set-cookie') (headers['set-cookie'] ??= []).push(value);
    else {
      const prev = headers[name] as string | undefined;
      headers[name] = prev === undefined ? value : `${prev}, ${value}`;
    }
  }
  const connection = String(headers.connection ?? '').toLowerCase();
  const keepAlive = m[1] === '1' ? !connection.split(',').map((s) => s.trim()).includes('close') : connection.includes('keep-alive');
  return { status: Number(m[2]), headers, keepAlive };
}

/** A response whose body arrives as slices of the connection's read buffers. */
class FastResponse implements HttpResponse {
  private readonly queue: { data: Buffer; owner: Buffer | undefined }[] = [];
  private waiting: ((v: void) => void) | undefined;
  private failure: Error | undefined;
  private pooled = false;
  finished = false;
  complete = false;
  whenDone: () => void = () => {};

  constructor(
    readonly statusCode: number,
    readonly headers: IncomingHttpHeaders,
    private readonly giveBack: (owner: Buffer) => void,
    private readonly kill: (e?: Error) => void,
  ) {}

  usePooledChunks(): (chunk: Buffer) => void {
    this.pooled = true;
    return (chunk) => {
      const owner = owners.get(chunk);
      if (!owner) return;
      owners.delete(chunk);
      this.giveBack(owner);
    };
  }

  push(data: Buffer, owner: Buffer | undefined): void {
    this.queue.push({ data, owner });
    this.wake();
  }

  end(): void {
    this.finished = true;
    this.complete = true;
    this.whenDone();
    this.wake();
  }

  error(e: Error): void {
    this.finished = true;
    this.failure = e;
    this.whenDone();
    // Buffers still queued are dropped with the connection.
    this.wake();
  }

  destroy(error?: Error): void {
    if (this.finished) return;
    this.error(error ?? abortError());
    this.kill(error);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    try {
      for (;;) {
        const item = this.queue.shift();
        if (item) {
          if (!item.owner) yield item.data;
          else if (this.pooled) {
            owners.set(item.data, item.owner);
            yield item.data;
          } else {
            const copy = Buffer.from(item.data);
            this.giveBack(item.owner);
            yield copy;
          }
          continue;
        }
        if (this.failure) throw this.failure;
        if (this.finished) return;
        await new Promise<void>((r) => (this.waiting = r));
      }
    } finally {
      // Left early (the consumer stopped reading): the rest of the body is not read, the connection goes.
      if (!this.finished) this.destroy(new TransientNetworkError('response not read to its end', 'ECONNRESET'));
    }
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }
}

/** The pooled buffer each slice handed out in pooled mode lives in (released by the consumer). */
const owners = new WeakMap<Buffer, Buffer>();
