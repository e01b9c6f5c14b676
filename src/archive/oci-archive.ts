import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { InternalError, UserError, abortReason } from '../errors.js';
import { parseImageRef } from '../manifest/image-ref.js';
import { writeAtomically } from '../util/fs.js';
import { END_BYTES, TarWriter, entryBytes } from './tar-writer.js';
import { markReleasing, releasesOnCallback } from './chunk-release.js';
import type { Descriptor } from '../oci/descriptor.js';
import { blobPath, digestHex, sha256Digest } from '../oci/digest.js';
import { ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, MT } from '../oci/media-types.js';
import type { Platform } from '../oci/platform.js';

/**
 * Writes ONE images archive for any engine: an OCI image layout (`oci-layout`, `index.json`,
 * `blobs/sha256/<hex>`) that also carries a Docker `manifest.json`, so the same file loads with
 * `ctr -n k8s.io images import` (and K3s' airgap import, which reads index.json) and with `docker load`
 * (which reads manifest.json). Every blob is stored once however many images share it, byte for byte
 * as the registry serves it (no recompression). Entries are sorted and carry one fixed mtime, so the
 * same input gives the same bytes. Blobs are streamed from their files; memory does not grow with
 * image size. The archive is written beside `outFile` and renamed into place only when complete.
 */
export interface OciArchiveImage {
  /** Canonical reference, e.g. `docker.io/kubeedge/cloudcore:v1.22.0`. */
  ref: string;
  platform: Platform;
  /**
   * false: index.json names no platform for this image (a lower arm variant than the bundle's: `ctr images
   * import --platform linux/arm/v7` matches index entries with platforms.OnlyStrict and would leave an
   * arm/v6 entry's content unreferenced; an entry without a platform it imports). Default true.
   */
  indexPlatform?: boolean;
  /** The platform-specific image manifest. `bytes` when the caller has it in memory (else read via `blobFile`). */
  manifest: Descriptor & { bytes?: Buffer };
  config: Descriptor;
  layers: Descriptor[];
}

export interface WriteOciArchiveOptions {
  outFile: string;
  /** Seconds since epoch for every entry. */
  mtime: number;
  images: OciArchiveImage[];
  /** Path of the verified file holding `digest` (e.g. a content-addressed cache). */
  blobFile(digest: string): string;
  /**
   * Optional: resolves when the blob's file is complete and verified (a download still running). The
   * writer then streams blobs in order as they arrive, overlapping the archive with the downloads; a
   * rejection aborts the archive (no output file). Without it, every file must exist up front.
   */
  blobReady?(digest: string): Promise<void>;
  /**
   * Optional: true for a blob whose file this process verified itself (downloaded and hashed on the way
   * in, or hashed as it was read); it is not hashed again. Every other file-sourced blob (a cache entry
   * from an earlier build) is hashed as it is copied and must match its digest.
   */
  verifiedByCaller?(digest: string): boolean;
  signal?: AbortSignal | undefined;
  /** false: no fsync (an intermediate file; see ImageArchiveRequest.durable). */
  durable?: boolean;
}

export interface OciArchiveWriteResult {
  file: string;
  /** SHA-256 of the archive, hex, computed while writing. */
  sha256: string;
  size: number;
  /** Bytes of distinct blobs written (manifests, configs, layers; each once). */
  uniqueBlobBytes: number;
  /** Bytes if each image carried its own manifest, config and layers. */
  totalBlobBytes: number;
}

/** `index.json` of the layout: one entry per image, the platform-specific manifest, named for containerd and OCI tools. */
export function buildIndexJson(images: OciArchiveImage[]): string {
  const manifests = images.map((img) => {
    const r = parseImageRef(img.ref);
    const annotations: Record<string, string> = { [ANNOTATION_CONTAINERD_NAME]: r.canonical };
    // containerd (ctr import, K3s' airgap import) names images from io.containerd.image.name; it only
    // falls back to ref.name, which it filters by --base-name (no name at all without it). ref.name
    // is the tag, as the OCI convention and Docker's own `docker save` have it.
    if (r.tag) annotations[ANNOTATION_REF_NAME] = r.tag;
    const platform: Record<string, string> = { architecture: img.platform.architecture, os: img.platform.os };
    if (img.platform.variant) platform.variant = img.platform.variant;
    if (img.indexPlatform === false) return { mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.size, annotations };
    return { mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.size, annotations, platform };
  });
  return `${JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests })}\n`;
}

/** Docker's `manifest.json` (docker load): config and layer paths inside the archive, and the repo tags. */
export function buildDockerManifestJson(images: OciArchiveImage[]): string {
  const entries = images.map((img) => {
    const r = parseImageRef(img.ref);
    const repoTags = r.tag ? [`${r.registry}/${r.repository}:${r.tag}`] : [];
    return { Config: blobPath(img.config.digest), RepoTags: repoTags, Layers: img.layers.map((l) => blobPath(l.digest)) };
  });
  return `${JSON.stringify(entries)}\n`;
}

type BlobEntry = { size: number; bytes?: Buffer | undefined };

/** The archive's blobs: every distinct blob once, digests sorted, and the byte counts of the result. */
interface BlobSet {
  blobs: Map<string, BlobEntry>;
  digests: string[];
  uniqueBlobBytes: number;
  totalBlobBytes: number;
}

/**
 * The archive's layout, decided before a byte is written: its blobs, its JSON documents and its exact
 * size (the bundle tarball announces that size in the entry it streams the archive into).
 */
export interface OciLayout {
  set: BlobSet;
  indexJson: string;
  manifestJson: string;
  /** Bytes of the whole archive. */
  size: number;
}

const OCI_LAYOUT_FILE = '{"imageLayoutVersion":"1.0.0"}\n';

export function planOciArchive(images: OciArchiveImage[], shownAs: string): OciLayout {
  if (images.length === 0) throw new UserError(`no images to archive into ${shownAs}`, { code: 'usage', hint: 'list at least one image' });
  const seenRefs = new Set<string>();
  for (const img of images) {
    if (seenRefs.has(img.ref)) throw new InternalError(`image ${img.ref} listed twice`);
    seenRefs.add(img.ref);
  }
  const set = collectBlobs(images);
  checkGivenBytes(set);
  const indexJson = buildIndexJson(images);
  const manifestJson = buildDockerManifestJson(images);
  let size = entryBytes('blobs/', 0) + entryBytes('blobs/sha256/', 0) + END_BYTES;
  for (const d of set.digests) size += entryBytes(blobPath(d), set.blobs.get(d)!.size);
  for (const [name, text] of [['index.json', indexJson], ['manifest.json', manifestJson], ['oci-layout', OCI_LAYOUT_FILE]] as const) size += entryBytes(name, Buffer.byteLength(text));
  return { set, indexJson, manifestJson, size };
}

export async function writeOciArchive(opts: WriteOciArchiveOptions): Promise<OciArchiveWriteResult> {
  const layout = planOciArchive(opts.images, opts.outFile);
  await precheckFiles(layout.set, opts);
  return writeAtomically(opts.outFile, async (out) => ({ file: opts.outFile, ...(await writeOciArchiveTo(out, layout, opts)) }), { durable: opts.durable !== false });
}

/** What writeOciArchiveTo needs besides the layout: WriteOciArchiveOptions' blob access, and whether to hash. */
export type OciArchiveWriteToOptions = Omit<WriteOciArchiveOptions, 'outFile' | 'images' | 'durable'> & {
  /** false: the archive is not hashed here (the caller hashes the file it lands in); `sha256` is then ''. */
  hash?: boolean;
};

/**
 * Writes the archive `layout` into `out` (which it does not end): blobs in digest order, each as it is
 * ready (blobReady), the archive hashed on the way unless `hash` is false. Returns its digest and sizes.
 */
export async function writeOciArchiveTo(out: Writable, layout: OciLayout, opts: OciArchiveWriteToOptions): Promise<Omit<OciArchiveWriteResult, 'file'>> {
  const hasher = new HashingForwarder(out, opts.hash !== false);
  // Errors surface through the awaited writes and `finished` below; never as an uncaught event.
  hasher.on('error', () => {});
  const tar = new TarWriter(hasher, { mtime: opts.mtime });
  try {
    await writeLayout(tar, layout, opts);
    hasher.end();
    await finished(hasher);
  } catch (e) {
    // Stop forwarding before the caller destroys `out`; a write still in flight then ends in
    // ERR_STREAM_DESTROYED, which must not become an uncaught 'error' (we fail with `e`).
    hasher.destroy();
    out.on('error', () => {});
    throw e;
  }
  if (tar.bytesWritten !== layout.size) throw new InternalError(`images archive: ${tar.bytesWritten} bytes written, ${layout.size} planned`);
  return { sha256: opts.hash === false ? '' : hasher.digest(), size: tar.bytesWritten, uniqueBlobBytes: layout.set.uniqueBlobBytes, totalBlobBytes: layout.set.totalBlobBytes };
}

/** Every distinct blob once; a digest always denotes the same bytes, so sizes must agree. */
function collectBlobs(images: OciArchiveImage[]): BlobSet {
  const blobs = new Map<string, BlobEntry>();
  let totalBlobBytes = 0;
  const addBlob = (b: Descriptor, bytes?: Buffer) => {
    totalBlobBytes += b.size;
    const prev = blobs.get(b.digest);
    if (prev && prev.size !== b.size) throw new InternalError(`blob ${b.digest} has two sizes (${prev.size}, ${b.size})`);
    if (!prev) blobs.set(b.digest, { size: b.size, bytes });
    else if (bytes && !prev.bytes) prev.bytes = bytes;
  };
  for (const img of images) {
    addBlob(img.manifest, img.manifest.bytes);
    addBlob(img.config);
    for (const l of img.layers) addBlob(l);
  }
  const digests = [...blobs.keys()].sort();
  let uniqueBlobBytes = 0;
  for (const d of digests) uniqueBlobBytes += blobs.get(d)!.size;
  return { blobs, digests, uniqueBlobBytes, totalBlobBytes };
}

/** The blob's file exists with the descriptor's size. */
async function checkBlobFile(opts: Pick<WriteOciArchiveOptions, 'blobFile'>, d: string, size: number): Promise<void> {
  const file = opts.blobFile(d);
  let actual: number;
  try {
    actual = (await stat(file)).size;
  } catch (e) {
    throw UserError.runtime('cache', `blob ${d} is missing from ${file}`, 'build again to download it', e);
  }
  if (actual !== size) throw UserError.runtime('cache', `blob ${d} in ${file} has ${actual} bytes, expected ${size}`, 'remove the file and build again');
}

/** The blobs given in memory match their descriptors (a bug otherwise): checked when the layout is planned. */
function checkGivenBytes({ blobs, digests }: BlobSet): void {
  for (const d of digests) {
    const b = blobs.get(d)!;
    if (!b.bytes) continue;
    if (b.bytes.length !== b.size) throw new InternalError(`blob ${d}: ${b.bytes.length} bytes given, descriptor says ${b.size}`);
    if (sha256Digest(b.bytes) !== d) throw new InternalError(`blob ${d}: the bytes given do not match the digest`);
  }
}

/**
 * Without blobReady every file must be there: each is checked before the first byte is written, so a
 * missing blob fails without a partial file (blobs arriving through blobReady are checked when ready).
 */
async function precheckFiles({ blobs, digests }: BlobSet, opts: WriteOciArchiveOptions): Promise<void> {
  if (opts.blobReady) return;
  for (const d of digests) {
    const b = blobs.get(d)!;
    if (!b.bytes) await checkBlobFile(opts, d, b.size);
  }
}

/** The layout's entries in sorted order: blobs/…, index.json, manifest.json, oci-layout; then the tar end. */
async function writeLayout(tar: TarWriter, { set: { blobs, digests }, indexJson, manifestJson }: OciLayout, opts: Pick<WriteOciArchiveOptions, 'signal' | 'blobReady' | 'blobFile' | 'verifiedByCaller'>): Promise<void> {
  const check = () => {
    if (opts.signal?.aborted) throw abortReason(opts.signal);
  };
  await tar.addDirectory('blobs');
  await tar.addDirectory('blobs/sha256');
  for (const d of digests) {
    check();
    const b = blobs.get(d)!;
    if (b.bytes) await tar.addBuffer(blobPath(d), b.bytes);
    else {
      if (opts.blobReady) {
        await opts.blobReady(d);
        check();
        await checkBlobFile(opts, d, b.size);
      }
      // The file (a cache entry) is hashed as it is copied: a wrong entry fails here, not in the bundle.
      await tar.addFile(blobPath(d), opts.blobFile(d), opts.verifiedByCaller?.(d) ? {} : { sha256: digestHex(d) });
    }
  }
  await tar.addBuffer('index.json', indexJson);
  await tar.addBuffer('manifest.json', manifestJson);
  await tar.addBuffer('oci-layout', OCI_LAYOUT_FILE);
  await tar.finish();
}

/**
 * Forwards writes to `out` while hashing them (unless `hashing` is false); ending it does not end `out`. It buffers up to 8 MiB so
 * that reading and hashing the next blob overlaps with the file write of the previous chunk (the file
 * stream's own buffer is small); memory stays bounded by that. Over an `out` that releases its chunks
 * at their callbacks (a file: chunk-release.ts) it calls back only once `out` did, and is marked as
 * releasing too, so the tar writer above it copies cached blobs through reused buffers.
 */
class HashingForwarder extends Writable {
  private readonly hash = createHash('sha256');
  private result: string | undefined;
  private readonly releases: boolean;
  constructor(
    private readonly out: Writable,
    private readonly hashing: boolean,
  ) {
    super({ highWaterMark: 8 << 20 });
    this.releases = releasesOnCallback(out);
    if (this.releases) markReleasing(this);
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.out.destroyed) {
      cb(new Error('the archive file was closed'));
      return;
    }
    if (this.releases) {
      // The file write runs in the thread pool while we hash here; the chunk is free once it returned.
      this.out.write(chunk, (e) => cb(e));
      if (this.hashing) this.hash.update(chunk);
      return;
    }
    // Hand the chunk to the file first: its write runs in the thread pool while we hash here.
    const ok = this.out.write(chunk);
    if (this.hashing) this.hash.update(chunk);
    if (ok) cb();
    else {
      const onDrain = () => {
        this.out.off('error', onError);
        cb();
      };
      const onError = (e: Error) => {
        this.out.off('drain', onDrain);
        cb(e);
      };
      this.out.once('drain', onDrain);
      this.out.once('error', onError);
    }
  }
  digest(): string {
    this.result ??= this.hash.digest('hex');
    return this.result;
  }
}
