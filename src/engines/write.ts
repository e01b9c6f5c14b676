import { readFile, rm } from 'node:fs/promises';
import { InternalError, UserError, abortError, isAbort } from '../errors.js';
import type { Platform } from '../platform.js';
import { formatPlatform, platformExact, type Platform as ImagePlatform } from '../oci/platform.js';
import type { ProgressSink } from '../progress/sink.js';
import { checkEntrypoint, type ImageConfigLike } from './entrypoint.js';
import { indexLayerFile } from './layer-index.js';
import { planOciArchive, writeOciArchiveTo, type OciArchiveImage, type OciArchiveWriteResult, type OciLayout } from '../archive/oci-archive.js';
import { writeStagedHashed } from '../util/hash-worker.js';
import type { Writable } from 'node:stream';
import { parseImageRefs } from '../manifest/image-ref.js';
import { BlobCache } from '../oci/blob-cache.js';
import { digestFromHex } from '../oci/digest.js';
import { ContentMismatchError } from '../util/hash.js';
import type { CollectedImage, CollectedImages, ImageArchiveRequest, ImageArchiveResult, ImageCollectRequest, ImageEngine } from './types.js';

/** A collected image from what the archive stores; the reported info (digests, size) follows from it. */
export function collectedImage(archive: OciArchiveImage, engine: 'registry' | 'docker'): CollectedImage {
  const layers = archive.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType }));
  return {
    archive: { ...archive, layers },
    info: {
      ref: archive.ref,
      manifestDigest: archive.manifest.digest,
      configDigest: archive.config.digest,
      platform: archive.platform,
      size: archive.config.size + layers.reduce((s, l) => s + l.size, 0),
      layers,
      engine,
    },
  };
}

/**
 * A collected image as resolved for the `wanted` platform: index.json names its platform only when it is
 * exactly the wanted one (see OciArchiveImage.indexPlatform).
 */
export function collectedFor(wanted: Platform, image: Omit<OciArchiveImage, 'indexPlatform'>, engine: 'registry' | 'docker'): CollectedImage {
  return collectedImage({ ...image, indexPlatform: platformExact(wanted, image.platform) }, engine);
}

/**
 * The line a build prints when an image is taken for a lower arm variant than the bundle's (its index
 * has no image for the bundle's platform itself), or undefined when the platform is exact.
 */
export function lowerVariantNote(want: Platform, got: ImagePlatform): string | undefined {
  if (platformExact(want, got)) return undefined;
  return `warning: no ${formatPlatform(want)} image; taking ${formatPlatform(got)}, which containerd on a ${formatPlatform(want)} host also runs`;
}

/** The root cause among failures: the caller's own abort, else the first failure that is not an abort. */
export function rootCause(reasons: unknown[], callerSignal?: AbortSignal): unknown {
  if (callerSignal?.aborted) return callerSignal.reason ?? reasons[0];
  return reasons.find((e) => !isAbort(e)) ?? reasons[0];
}

/**
 * The abort an engine's remaining work is stopped with (and its errors turned into) once another image
 * of the same archive failed: an AbortError, so rootCause never reports it as the cause.
 */
export function anotherFailed(cause?: unknown): Error {
  return abortError('another image of this archive failed', cause);
}

/** What writing an archive of collected images needs besides the collections. */
export type CollectedWriteRequest = Pick<ImageArchiveRequest, 'mtime' | 'cacheDir' | 'signal' | 'progress'>;

/** The collected images in archive order (`order`: canonical references; default as collected) and the archive's layout. */
export function layoutCollected(parts: CollectedImages[], order: string[] | undefined, shownAs: string): { images: CollectedImage[]; layout: OciLayout } {
  const all = parts.flatMap((p) => p.images);
  const byRef = new Map(all.map((i) => [i.info.ref, i]));
  const images = order ? order.map((r) => byRef.get(r) ?? missing(r)) : all;
  return { images, layout: planOciArchive(images.map((i) => i.archive), shownAs) };
}

/**
 * Writes one images archive from the collections of one or more engines (blobs from the shared cache,
 * each once, images in the order given by `order`). Blobs still arriving are streamed as they are
 * verified. A corrupt cached blob is repaired (repairBlob) and the archive written again from the start.
 * On any failure every engine is stopped and waited for, then the root cause is thrown.
 */
export async function writeCollected(parts: CollectedImages[], req: CollectedWriteRequest & Pick<ImageArchiveRequest, 'outFile' | 'durable'> & { order?: string[] }): Promise<ImageArchiveResult> {
  try {
    const { images, layout } = layoutCollected(parts, req.order, req.outFile);
    const repaired = new Set<string>();
    for (;;) {
      try {
        // The archive is hashed as it lands in the file, on the hashing thread.
        const staged = await writeStagedHashed(req.outFile, (out) => streamCollected(parts, images, layout, out, { ...req, hash: false }), { durable: req.durable !== false });
        await staged.commit();
        return { file: req.outFile, ...staged.result.value, sha256: staged.result.sha256, images: images.map((i) => i.info) };
      } catch (e) {
        if (!(e instanceof ContentMismatchError) || req.signal?.aborted) throw e;
        await repairBlob(e, images, parts, repaired);
      }
    }
  } catch (e) {
    return stopParts(parts, e, req.signal);
  }
}

/** Stops every engine's remaining work, waits for it, and throws the root cause among the failures. */
export async function stopParts(parts: CollectedImages[], e: unknown, callerSignal: AbortSignal | undefined): Promise<never> {
  const reasons = (await Promise.all(parts.map((p) => p.stop()))).flat();
  throw rootCause([...reasons, e], callerSignal);
}

/**
 * Writes the archive of `images` (laid out as `layout`) into `out`, which it does not end: each blob as
 * it arrives, hashed as it is copied unless an engine verified it in this run; what is inside each image
 * (its entrypoint against its platform) is checked alongside, and a refusal stops the writing. Resolves
 * once every engine is done. A cached blob that does not match its digest throws ContentMismatchError
 * (the caller repairs it with repairBlob and writes again from the start).
 */
export async function streamCollected(parts: CollectedImages[], images: CollectedImage[], layout: OciLayout, out: Writable, req: CollectedWriteRequest & { hash?: boolean }): Promise<Omit<OciArchiveWriteResult, 'file'>> {
  const cache = new BlobCache(req.cacheDir);
  const blobReady = async (d: string) => {
    await Promise.all(parts.map((p) => p.blobReady(d)));
  };
  const refused = new AbortController();
  const signal = req.signal ? AbortSignal.any([req.signal, refused.signal]) : refused.signal;
  const inside = checkImagesInside(images, cache, blobReady, signal, req.progress).then((problems) => {
    if (problems.length === 0) return;
    const e = new UserError(`images whose binaries are not for their platform:\n${problems.map((p) => `  ${p}`).join('\n')}`, {
      code: 'platform',
      kind: 'runtime',
      hint: 'the image is mislabelled upstream (its index/config claim a platform its files are not built for): use another tag or image; nothing was written',
    });
    refused.abort(e);
    throw e;
  });
  inside.catch(() => {}); // observed below
  try {
    const written = await writeOciArchiveTo(out, layout, {
      mtime: req.mtime,
      blobFile: (d) => cache.path(d),
      blobReady,
      // Blobs an engine verified in this run are not hashed twice; repaired ones were just fetched.
      verifiedByCaller: (d) => parts.some((p) => p.verifiedNow?.(d) ?? false),
      signal,
      ...(req.hash === false ? { hash: false } : {}),
    });
    await Promise.all(parts.map((p) => p.done));
    await inside;
    return written;
  } catch (e) {
    if (refused.signal.aborted) throw refused.signal.reason;
    // This attempt's check stops with it (a repaired attempt checks again).
    refused.abort(abortError('the images archive is written again'));
    await inside.catch(() => {});
    throw e;
  }
}

/**
 * A cached blob that did not match its digest (a corrupted or tampered cache entry, found while an
 * archive was written): evicts it and has the engine that owns it fetch it again; each blob is repaired
 * at most once. When no engine can fetch it again this throws a UserError naming the blob, its cache
 * path and the fix.
 */
export async function repairBlob(e: ContentMismatchError, images: CollectedImage[], parts: CollectedImages[], repaired: Set<string>): Promise<void> {
  const digest = digestFromHex(e.expected);
  const owners = images.filter((i) => [i.archive.manifest, i.archive.config, ...i.archive.layers].some((b) => b.digest === digest)).map((i) => i.info.ref);
  const what = `cached blob ${digest} (of ${owners.join(', ') || 'this archive'}) at ${e.file} does not match its digest: got sha256:${e.actual} (${e.size} bytes)`;
  await rm(e.file, { force: true });
  if (repaired.has(digest)) {
    throw UserError.runtime('cache', `${what}, again after it was fetched anew`, `something rewrites the cache while builds run; check the disk, then build again with an empty --cache-dir`);
  }
  repaired.add(digest);
  let failure: unknown;
  for (const p of parts) {
    if (!p.refetch) continue;
    try {
      if (await p.refetch(digest)) return;
    } catch (err) {
      failure = err;
      break;
    }
  }
  const why = failure instanceof Error ? `; fetching it again failed: ${failure.message}` : '';
  throw UserError.runtime(
    'cache',
    `${what}; it was removed from the cache${why}`,
    `build again (it is fetched anew${failure ? ' once the registry is reachable' : ''}), or remove ${e.file} / run with an empty --cache-dir`,
    failure ?? e,
  );
}

/**
 * For each image: its config and layers from the cache (each waited for), its entrypoint resolved
 * through the layers from the top down (a layer is read only when needed) and checked against the
 * image's platform. Returns the problems, each naming image, platform and file.
 */
async function checkImagesInside(
  images: CollectedImage[],
  cache: BlobCache,
  blobReady: (d: string) => Promise<void>,
  signal: AbortSignal,
  progress: ProgressSink | undefined,
): Promise<string[]> {
  const out: string[] = [];
  for (const img of images) {
    const { archive } = img;
    await blobReady(archive.config.digest);
    signal.throwIfAborted();
    let config: ImageConfigLike;
    try {
      config = JSON.parse((await readFile(cache.path(archive.config.digest))).toString('utf8')) as ImageConfigLike;
    } catch (e) {
      throw UserError.runtime('registry', `image ${archive.ref}: its config ${archive.config.digest} is not readable JSON (${(e as Error).message})`);
    }
    const f = await checkEntrypoint(config, archive.platform.architecture, archive.layers.length, async (n) => {
      const layer = archive.layers[n]!;
      await blobReady(layer.digest);
      return indexLayerFile(cache.path(layer.digest), signal);
    });
    const plat = formatPlatform(archive.platform);
    for (const p of f.problems) out.push(`${archive.ref} (${plat}): ${p}`);
    if (f.unchecked && progress) progress.note(archive.ref, `entrypoint not checked: ${f.unchecked}`);
  }
  return out;
}

function missing(ref: string): never {
  throw new InternalError(`no engine collected ${ref}`);
}

/**
 * One archive from several engines: each engine collects its share of `req.images` (at the same time;
 * the shares are disjoint, as the plan lists each image once), then the shared writer stores them in
 * request order. A failure in one share stops the others.
 * With one share this is simply that engine's `archive`.
 */
export async function archiveWithEngines(shares: { engine: ImageEngine; images: string[] }[], req: ImageArchiveRequest): Promise<ImageArchiveResult> {
  const used = shares.filter((s) => s.images.length > 0);
  if (used.length === 1) return used[0]!.engine.archive({ ...req, images: used[0]!.images });
  const collected = await collectShares(used, withoutArchive(req));
  return writeCollected(collected, { outFile: req.outFile, mtime: req.mtime, cacheDir: req.cacheDir, signal: req.signal, progress: req.progress, order: archiveOrder(req.images), ...(req.durable === false ? { durable: false } : {}) });
}

/** The canonical references of `images`, in order: the order of an archive's images. */
export function archiveOrder(images: string[]): string[] {
  return parseImageRefs(images).map((r) => r.ref.canonical);
}

/**
 * Each engine collects its share of the images (all at once; shares without images are skipped). When
 * one fails, the others are stopped and the root cause is thrown; else the collections (blobs may still
 * be arriving: give them to writeCollected/streamCollected, or stopParts).
 */
export async function collectShares(shares: { engine: ImageEngine; images: string[] }[], req: ImageCollectRequest): Promise<CollectedImages[]> {
  const internal = new AbortController();
  const signal = req.signal ? AbortSignal.any([req.signal, internal.signal]) : internal.signal;
  const settled = await Promise.allSettled(
    shares
      .filter((s) => s.images.length > 0)
      .map((s) =>
        s.engine.collect({ ...req, images: s.images, signal }).catch((e: unknown) => {
          internal.abort(anotherFailed());
          throw e;
        }),
      ),
  );
  const collected = settled.filter((x): x is PromiseFulfilledResult<CollectedImages> => x.status === 'fulfilled').map((x) => x.value);
  const failed = settled.filter((x): x is PromiseRejectedResult => x.status === 'rejected').map((x) => x.reason as unknown);
  if (failed.length > 0) {
    const reasons = (await Promise.all(collected.map((c) => c.stop()))).flat();
    throw rootCause([...failed, ...reasons], req.signal);
  }
  return collected;
}

function withoutArchive(req: ImageArchiveRequest): Omit<ImageArchiveRequest, 'outFile' | 'mtime'> {
  const { outFile: _o, mtime: _m, ...rest } = req;
  return rest;
}
