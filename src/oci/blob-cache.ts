import { randomBytes } from 'node:crypto';
import { open, readdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { UserError, fsError } from '../errors.js';
import type { BlobRef } from './descriptor.js';
import { digestFromHex, digestHex, sha256Digest } from './digest.js';
import { mkdirp, pidAlive } from '../util/fs.js';
import { hashFileAsWritten, type FileHashing } from '../util/hash-worker.js';
import { isRetryableNetworkError, retryDelayMs, sleep, TransientNetworkError, type RetryOptions } from '../util/retry.js';

/**
 * What the blob cache (and the registry client) read of a response: node's IncomingMessage has all of it;
 * src/engines/registry/fast-http.ts makes such responses over reused read buffers.
 */
export interface HttpResponse extends AsyncIterable<Buffer | string> {
  statusCode?: number | undefined;
  headers: IncomingHttpHeaders;
  /** True once the whole body arrived. */
  readonly complete: boolean;
  destroy(error?: Error): unknown;
  /**
   * Optional: from now on the body comes as slices of reused read buffers (no copy); each must be given
   * back with the returned function once its bytes are used (written), else the connection stalls. The
   * slices lent at once add up to at least 512 KiB (WRITE_BATCH below) before reading pauses.
   * Without this call every chunk is a copy of its own.
   */
  usePooledChunks?(): (chunk: Buffer) => void;
}

export interface DownloadContext {
  /** Image reference the blob belongs to (for messages). */
  image: string;
  /** What the blob is ("layer", "config", "manifest"), for messages. */
  what: string;
  /** Opens the blob, from `offset` when > 0 (the response may be 206 or a full 200). */
  open(offset: number): Promise<HttpResponse>;
  retry: RetryOptions;
  signal?: AbortSignal | undefined;
  onBytes?: (n: number) => void;
}

const WRITE_BATCH = 512 << 10;

/**
 * Content-addressed blob store: `<cacheDir>/blobs/sha256/<hex>`. Every blob streams into a uniquely
 * named temp file under `<cacheDir>/tmp/`, is hashed from that file as it is written (on the hashing
 * thread, util/hash-worker.ts: the bytes kept are the bytes verified), and renamed into place only after its digest
 * and size were verified, so the store never holds a wrong or partial blob, and two builds sharing the
 * cache at once at worst download the same blob twice (the rename is atomic, the content identical).
 */
export class BlobCache {
  readonly dir: string;
  private readonly tmpDir: string;
  private ready: Promise<void> | undefined;

  constructor(readonly cacheDir: string) {
    this.dir = join(cacheDir, 'blobs', 'sha256');
    this.tmpDir = join(cacheDir, 'tmp');
  }

  path(digest: string): string {
    return join(this.dir, digestHex(digest));
  }

  /** Creates the directories and removes temp files left by builds that no longer run. */
  init(): Promise<void> {
    this.ready ??= (async () => {
      await mkdirp(this.dir);
      await mkdirp(this.tmpDir);
      for (const name of await readdir(this.tmpDir)) {
        const m = /^[a-f0-9]{64}\.(\d+)\.[a-f0-9]+\.partial$/.exec(name);
        if (m && !pidAlive(Number(m[1]))) await rm(join(this.tmpDir, name), { force: true });
      }
    })().catch((e: unknown) => Promise.reject(fsError(e, this.cacheDir, 'creating the blob cache in', this.cacheDir)));
    return this.ready;
  }

  /**
   * True when the blob is in the store with the right size (its content was verified on the way in; it is
   * hashed again where it is used: readVerified, and the archive writer as it copies it).
   */
  async has(b: BlobRef): Promise<boolean> {
    try {
      const s = await stat(this.path(b.digest));
      return s.isFile() && s.size === b.size;
    } catch {
      return false;
    }
  }

  async read(b: BlobRef): Promise<Buffer> {
    return readFile(this.path(b.digest));
  }

  /**
   * A small cached blob (manifest, config) read into memory and hashed again; undefined when it is not
   * in the store, or was there with other bytes (then it is evicted, so that the caller fetches it anew).
   * `size` undefined: any size (a digest-pinned reference, whose size is not known in advance).
   */
  async readVerified(b: { digest: string; size?: number | undefined }): Promise<Buffer | undefined> {
    const file = this.path(b.digest);
    let body: Buffer;
    try {
      body = await readFile(file);
    } catch {
      return undefined;
    }
    if ((b.size === undefined || body.length === b.size) && sha256Digest(body) === b.digest) return body;
    await rm(file, { force: true });
    return undefined;
  }

  /** Stores bytes already in memory (manifests, configs) after verifying them. */
  async putBuffer(b: BlobRef, body: Buffer, image: string, what: string): Promise<void> {
    await this.init();
    const actual = sha256Digest(body);
    if (actual !== b.digest || body.length !== b.size) throw mismatch(image, what, b, actual, body.length);
    // Already stored (a tag's manifest fetched again on every build): not written again. Content-addressed,
    // so the entry holds these bytes unless it was damaged, which its next verified read repairs. A warm
    // build of the cloud set rewrote 14 manifests (a temp file and a rename over the old entry each).
    if (await this.has(b)) return;
    const tmp = this.tempPath(b.digest);
    try {
      const fh = await open(tmp, 'wx');
      try {
        // No fsync (as for downloads): it cost ~40 fsyncs per resolve; a torn file fails readVerified's hash and is fetched anew.
        await fh.writeFile(body);
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path(b.digest));
    } catch (e) {
      await rm(tmp, { force: true });
      throw fsError(e, this.cacheDir, `caching ${what} ${b.digest} of ${image} in`, this.cacheDir);
    }
  }

  /**
   * Streams a blob into the store, verifying digest and size. A connection that drops mid-blob is
   * retried (bounded) and resumed with `Range` from the bytes already on disk when the server answers
   * 206; a full 200 answer restarts the blob.
   */
  async download(b: BlobRef, ctx: DownloadContext): Promise<void> {
    await this.init();
    const tmp = this.tempPath(b.digest);
    let fh: FileHandle | undefined;
    // The bytes are hashed as they land in the file, on the hashing thread (read back from it; the
    // session opens the file at its first read).
    const state = { offset: 0, hashing: hashFileAsWritten(tmp) };
    try {
      fh = await open(tmp, 'w+');
      const restart = async () => {
        state.hashing.close();
        state.offset = 0;
        await fh!.truncate(0);
        state.hashing = hashFileAsWritten(tmp);
      };
      let attempt = 0;
      for (;;) {
        attempt++;
        let res: HttpResponse | undefined;
        try {
          res = await ctx.open(state.offset);
          checkAnnouncedSize(res, b, ctx);
          if (state.offset > 0 && !rangeAccepted(res, state.offset)) {
            // The server ignored Range (full 200) or answered another range: start over.
            await restart();
            if (res.statusCode !== 200) throw new TransientNetworkError('the server answered an unexpected range', 'ERANGE');
          }
          await this.pump(res, fh, state, b, ctx);
          if (state.offset === b.size) break;
          // Ended without an error but short: the connection was closed early.
          throw new TransientNetworkError(`connection closed after ${state.offset} of ${b.size} bytes`, 'ECONNRESET');
        } catch (e) {
          res?.destroy();
          if (!retryable(e, attempt, ctx)) throw finalError(e, attempt, b, ctx);
          await sleep(retryDelayMs(ctx.retry, attempt), ctx.signal);
          // Resume after the bytes safely on disk (the hash is of the file's bytes).
          const onDisk = (await fh.stat()).size;
          if (onDisk < state.offset || onDisk > b.size) await restart();
          else if (onDisk !== state.offset) {
            state.offset = onDisk;
            state.hashing.written(onDisk);
          }
        }
      }
      const hashed = await state.hashing.finish();
      const actual = digestFromHex(hashed.hex);
      if (actual !== b.digest || hashed.size !== b.size) throw mismatch(ctx.image, ctx.what, b, actual, hashed.size);
      // No fsync per blob (it dominated cold builds): the rename is atomic, and a blob cut short by a
      // crash fails the size check on its next use and is fetched again.
      await fh.close();
      fh = undefined;
      await rename(tmp, this.path(b.digest));
    } catch (e) {
      state.hashing.close();
      await fh?.close().catch(() => {});
      await rm(tmp, { force: true });
      throw fsError(e, this.cacheDir, `caching ${ctx.what} ${b.digest} of ${ctx.image} in`, this.cacheDir);
    }
  }

  private async pump(res: HttpResponse, fh: FileHandle, state: { offset: number; hashing: FileHashing }, b: BlobRef, ctx: DownloadContext): Promise<void> {
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    // One positional write in flight while the next batch is received; the offset advances in byte
    // order when a write is issued, the hashing once it returned, and every write is awaited before
    // either is relied on.
    let writing: Promise<unknown> = Promise.resolve();
    // A response that lends its read buffers (fast-http.ts): each chunk is given back once written.
    const giveBack = res.usePooledChunks?.();
    const flush = async () => {
      await writing;
      if (pendingBytes === 0) return;
      const bufs = pending;
      const len = pendingBytes;
      pending = [];
      pendingBytes = 0;
      const pos = state.offset;
      const hashing = state.hashing;
      state.offset += len;
      // writev: no concatenation copy; a short write (rare) is completed by the loop.
      writing = writeAllAt(fh, bufs, len, pos).then(() => hashing.written(pos + len));
      if (giveBack) writing = writing.finally(() => bufs.forEach(giveBack));
    };
    try {
      for await (const chunk of res) {
        const c = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        if (state.offset + pendingBytes + c.length > b.size) {
          throw UserError.runtime(
            'digest-mismatch',
            `${ctx.what} ${b.digest} of ${ctx.image} is larger than the ${b.size} bytes its manifest says`,
            'the registry or mirror serves content that does not match the manifest; the blob was not cached',
          );
        }
        pending.push(c);
        pendingBytes += c.length;
        ctx.onBytes?.(c.length);
        if (pendingBytes >= WRITE_BATCH) await flush();
      }
      if (!res.complete) throw new TransientNetworkError('connection closed before the blob was complete', 'ECONNRESET');
    } finally {
      // Keep every byte received: a resumed download continues after them.
      if (!(ctx.signal?.aborted ?? false)) await flush();
      await writing;
    }
  }

  private tempPath(digest: string): string {
    return join(this.tmpDir, `${digestHex(digest)}.${process.pid}.${randomBytes(6).toString('hex')}.partial`);
  }
}

async function writeAllAt(fh: FileHandle, bufs: Buffer[], len: number, pos: number): Promise<void> {
  let done = (await fh.writev(bufs, pos)).bytesWritten;
  if (done === len) return;
  const rest = Buffer.concat(bufs, len).subarray(done);
  while (done < len) done += (await fh.write(rest, done - (len - rest.length), len - done, pos + done)).bytesWritten;
}

/**
 * The length the server announces for the whole blob (Content-Length of a 200, the total of a 206's
 * Content-Range) must be the descriptor's size: content of another length is refused at once, not
 * retried as a connection cut short (OCI image-spec descriptor.md: "If the length of the retrieved
 * content does not match the specified length, the content SHOULD NOT be trusted").
 */
function checkAnnouncedSize(res: HttpResponse, b: BlobRef, ctx: DownloadContext): void {
  let total: number | undefined;
  if (res.statusCode === 200 && res.headers['content-length'] !== undefined) total = Number(res.headers['content-length']);
  else if (res.statusCode === 206) {
    const m = /\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
    if (m) total = Number(m[1]);
  }
  if (total !== undefined && Number.isFinite(total) && total !== b.size) {
    res.destroy();
    throw UserError.runtime(
      'digest-mismatch',
      `size mismatch for ${ctx.what} ${b.digest} of ${ctx.image}: the manifest says ${b.size} bytes, the registry serves ${total}`,
      'the registry or mirror serves content that does not match the manifest; nothing was cached. Fix or re-push the image, then build again',
    );
  }
}

/** Another try is due: a dropped connection (not a verification failure), tries left, not aborted. */
function retryable(e: unknown, attempt: number, ctx: DownloadContext): boolean {
  return !(e instanceof UserError) && isRetryableNetworkError(e) && attempt < ctx.retry.attempts && !ctx.signal?.aborted;
}

/** What a download that will not be tried again fails with: the network failure after the last try named as such, else the error itself. */
function finalError(e: unknown, attempt: number, b: BlobRef, ctx: DownloadContext): unknown {
  if (e instanceof UserError || !isRetryableNetworkError(e) || ctx.signal?.aborted) return e;
  return UserError.runtime(
    'network',
    `downloading ${ctx.what} ${b.digest} of ${ctx.image} failed after ${attempt} tries: ${(e as Error).message}`,
    'check the network or the registry/mirror, then build again (verified blobs are kept in the cache)',
    e,
  );
}

function rangeAccepted(res: HttpResponse, offset: number): boolean {
  if (res.statusCode !== 206) return false;
  const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
  return m !== null && Number(m[1]) === offset;
}

function mismatch(image: string, what: string, b: BlobRef, actual: string, actualSize: number): UserError {
  return UserError.runtime(
    'digest-mismatch',
    `verification failed for ${what} ${b.digest} of ${image}: expected ${b.digest} (${b.size} bytes), got ${actual} (${actualSize} bytes)`,
    'the registry or mirror served corrupted or tampered content; nothing was cached. Fix or re-push the image, then build again',
  );
}
