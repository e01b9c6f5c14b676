import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { UserError, fsError } from '../../errors.js';
import { mkdirp } from '../../util/fs.js';
import { hashingTap } from '../../util/hash.js';
import type { BlobCache } from '../../oci/blob-cache.js';
import type { Descriptor } from '../../oci/descriptor.js';
import { digestFromHex, digestHex, parseDigest, type Digest } from '../../oci/digest.js';
import { MT } from '../../oci/media-types.js';

/** A layer blob in the cache (its descriptor: the stored gzip blob) and what its config says of it. */
export interface StoredLayer extends Descriptor {
  /** Digest of the uncompressed tar (the config's rootfs.diff_ids entry). */
  diffId: Digest;
  /** Uncompressed size (0 when the blob came from the cache and the size is not known). */
  rawSize: number;
}

/** Input is fed to zlib in blocks of exactly this size, so the output does not depend on how the socket chunked it. */
const FEED_BLOCK = 1 << 20;
const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

function startsWith(b: Buffer, magic: number[]): boolean {
  return b.length >= magic.length && magic.every((m, i) => b[i] === m);
}

async function* rechunk(src: AsyncIterable<Buffer>, size: number, tap: (c: Buffer) => void): AsyncGenerator<Buffer> {
  let block = Buffer.allocUnsafe(size);
  let fill = 0;
  for await (const chunk of src) {
    tap(chunk);
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(size - fill, chunk.length - off);
      chunk.copy(block, fill, off, off + n);
      fill += n;
      off += n;
      if (fill === size) {
        yield block;
        block = Buffer.allocUnsafe(size);
        fill = 0;
      }
    }
  }
  if (fill > 0) yield block.subarray(0, fill);
}

/**
 * Turns the uncompressed layer tars `docker save` returns into gzip blobs in the shared blob cache
 * (`<cacheDir>/blobs/sha256/<hex>`), and remembers diffID → blob (`<cacheDir>/docker/gzip-<level>/<diffhex>`)
 * so an unchanged layer is never compressed twice. Compression is deterministic: zlib at a fixed level,
 * gzip header mtime 0, input fed in fixed-size blocks; the same layer gives the same bytes on the same
 * Node/zlib. Layers that are already gzip (a containerd image store exports blobs as stored) are kept
 * as they are. Everything streams: memory does not grow with layer size.
 */
export class LayerStore {
  private readonly mapDir: string;
  private readonly tmpDir: string;
  constructor(
    private readonly cache: BlobCache,
    cacheDir: string,
    readonly level: number,
  ) {
    this.mapDir = join(cacheDir, 'docker', `gzip-${level}`);
    this.tmpDir = join(cacheDir, 'tmp');
  }

  async init(): Promise<void> {
    await this.cache.init();
    await mkdirp(this.mapDir).catch((e: unknown) => Promise.reject(fsError(e, this.cache.cacheDir, 'creating the layer map in', this.cache.cacheDir)));
  }

  /** The stored gzip blob for an uncompressed layer, when it is in the cache. */
  async lookup(diffId: string): Promise<StoredLayer | undefined> {
    try {
      const j = JSON.parse(await readFile(join(this.mapDir, digestHex(diffId)), 'utf8')) as { digest: string; size: number; mediaType: string };
      const digest = parseDigest(j.digest);
      if (await this.cache.has({ digest, size: j.size })) return { digest, size: j.size, mediaType: j.mediaType, diffId: parseDigest(diffId), rawSize: 0 };
    } catch {
      // not mapped
    }
    return undefined;
  }

  /** Stores one layer from a stream (uncompressed tar, or gzip kept as is). */
  async store(src: AsyncIterable<Buffer>, ctx: { image: string; signal?: AbortSignal | undefined; onBytes?: (n: number) => void }): Promise<StoredLayer> {
    const it = src[Symbol.asyncIterator]();
    const first = await it.next();
    const head: Buffer = first.done ? Buffer.alloc(0) : first.value;
    const all = (async function* () {
      if (head.length) yield head;
      for (;;) {
        const n = await it.next();
        if (n.done) return;
        yield n.value;
      }
    })();
    if (startsWith(head, ZSTD_MAGIC)) {
      await it.return?.();
      throw UserError.runtime('unsupported', `${ctx.image}: the Docker daemon exported a zstd-compressed layer, which the docker engine does not support`, 'use --engine registry for this image');
    }
    const tmp = join(this.tmpDir, `${randomBytes(32).toString('hex')}.${process.pid}.${randomBytes(4).toString('hex')}.partial`);
    try {
      const rawHash = createHash('sha256');
      let rawSize = 0;
      const tap = hashingTap();
      const out = createWriteStream(tmp, { flags: 'wx', flush: true });
      const countIn = (c: Buffer) => {
        rawHash.update(c);
        rawSize += c.length;
        ctx.onBytes?.(c.length);
      };
      let mediaType: string = MT.ociLayerGzip;
      let diffId: Digest;
      if (startsWith(head, GZIP_MAGIC)) {
        // Already compressed: keep the blob; the diffID is the digest of its decompressed bytes.
        await pipeline(rechunk(all, FEED_BLOCK, countIn), tap.stream, out, { signal: ctx.signal ?? new AbortController().signal });
        diffId = await gunzipDigest(tmp);
        mediaType = MT.ociLayerGzip;
      } else {
        const gz = createGzip({ level: this.level, chunkSize: 1 << 18 });
        await pipeline(rechunk(all, FEED_BLOCK, countIn), gz, tap.stream, out, { signal: ctx.signal ?? new AbortController().signal });
        diffId = digestFromHex(rawHash.digest('hex'));
      }
      const digest = digestFromHex(tap.hex());
      const outSize = tap.bytes();
      if (await this.cache.has({ digest, size: outSize })) await rm(tmp, { force: true });
      else await rename(tmp, this.cache.path(digest));
      await this.remember(diffId, { digest, size: outSize, mediaType });
      return { digest, size: outSize, mediaType, diffId, rawSize };
    } catch (e) {
      await rm(tmp, { force: true });
      throw fsError(e, this.cache.cacheDir, `caching a layer of ${ctx.image} in`, this.cache.cacheDir);
    }
  }

  private async remember(diffId: Digest, v: Descriptor): Promise<void> {
    const file = join(this.mapDir, digestHex(diffId));
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, `${JSON.stringify(v)}\n`);
    } catch (e) {
      await rm(tmp, { force: true });
      throw fsError(e, this.cache.cacheDir, 'caching the layer map in', this.cache.cacheDir);
    }
    await rename(tmp, file);
  }
}

async function gunzipDigest(file: string): Promise<Digest> {
  const h = createHash('sha256');
  await pipeline(
    createReadStream(file, { highWaterMark: 1 << 20 }),
    createGunzip(),
    new Writable({
      write(c: Buffer, _e, cb) {
        h.update(c);
        cb();
      },
    }),
  );
  return digestFromHex(h.digest('hex'));
}
