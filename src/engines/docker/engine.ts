import { createHash, randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import { InternalError, UserError, abortReason } from '../../errors.js';
import { parseImageRefs, type ImageRef } from '../../manifest/image-ref.js';
import { BlobCache } from '../../oci/blob-cache.js';
import { CredentialStore } from '../../oci/credentials.js';
import type { BlobRef } from '../../oci/descriptor.js';
import { sha256Digest } from '../../oci/digest.js';
import { MT } from '../../oci/media-types.js';
import { configPlatform, formatPlatform, platformMatches, type Platform as ImagePlatform } from '../../oci/platform.js';
import type { Platform } from '../../platform.js';
import { silentSink, type ProgressSink } from '../../progress/sink.js';
import { fmtBytes } from '../../util/format.js';
import { createLimiter } from '../../util/limit.js';
import type { CollectedImages, ImageArchiveRequest, ImageArchiveResult, ImageCollectRequest, ImageEngine } from '../types.js';
import { anotherFailed, collectedFor, lowerVariantNote, rootCause, writeCollected } from '../write.js';
import { ImageAcquirer } from './acquire.js';
import { connectDaemon, daemonAddress, type DaemonAddress } from './connect.js';
import { DaemonImages } from './daemon.js';
import { exportedFromCache, exportImage, type ExportedImage } from './export.js';
import { LayerStore, type StoredLayer } from './layers.js';
import { PhaseClock } from './phase-clock.js';
import { Unpinner } from './unpin.js';

export interface DockerEngineOptions {
  /** Daemon address (`unix:///path`, `tcp://host:port`); default `DOCKER_HOST`, else /var/run/docker.sock. */
  host?: string;
  /** Docker config with credentials passed to the daemon for pulls; default `$DOCKER_CONFIG/config.json` or ~/.docker/config.json. */
  dockerConfigPath?: string;
  /**
   * zlib level for the layers `docker save` returns uncompressed (default 1: measured ~3.5× faster than
   * level 6 for ~9% larger layers; the image ID does not depend on it).
   */
  gzipLevel?: number;
  /** Repository for the engine's temporary tags (default `kubeprepare.local/tmp`). */
  tempRepository?: string;
  /**
   * Keep what the build pulled in the daemon, under the engine's own stable tags
   * (`kubeprepare.local/keep/<hash>:<arch>`, one per image and platform; the user's tags are still
   * put back as they were). A rebuild then only checks each manifest with the registry and, with the
   * blob cache, needs no `docker save`. Off by default: the daemon is left as it was found.
   */
  keepImages?: boolean;
  /** Images handled at once (pull, export, compress); default 3. `ImageArchiveRequest.concurrency` wins. */
  concurrency?: number;
}

/** Wall-clock seconds during which at least one image was in each phase (phases of different images overlap). */
export interface DockerTimings {
  pull: number;
  save: number;
  /**
   * Removing the private tags (the daemon deletes what it pulled for the build): from the first removal,
   * once every image was pulled, to the last; it overlaps the last saves and the archive writing.
   */
  unpin: number;
  /** From the last save to the archive written and the deletions done (the two run side by side). */
  archive: number;
  total: number;
}

export interface DockerArchiveResult extends ImageArchiveResult {
  timings: DockerTimings;
  /** The `docker save` format the daemon wrote (or 'cache' when every image came from the cache). */
  saveFormat: 'docker-archive' | 'oci-layout' | 'cache' | 'mixed';
}

const DEFAULT_CONCURRENCY = 3;

/**
 * Connects to the Docker daemon (fails with a clear UserError naming the address when none answers)
 * and returns the engine.
 */
export async function createDockerEngine(opts: DockerEngineOptions = {}): Promise<DockerEngine> {
  const addr = daemonAddress(opts.host);
  const { docker, version } = await connectDaemon(addr);
  return new DockerEngine(docker, addr, version, opts);
}

interface Resolved {
  ref: ImageRef;
  platform: ImagePlatform;
  config: BlobRef;
  layers: StoredLayer[];
  manifest: BlobRef & { bytes: Buffer };
  format: 'docker-archive' | 'oci-layout' | 'cache';
}

/** What every image of one `collect` shares. */
interface CollectRun {
  cache: BlobCache;
  store: LayerStore;
  signal: AbortSignal;
  progress: ProgressSink;
  phases: { pull: PhaseClock; save: PhaseClock };
  /** The private tags, removed once every image is pulled and each image is saved. */
  unpin: Unpinner;
  /** Images still to be pulled (or found, for `pull: never`). */
  toPull: number;
}

/** Its `done` resolves once the daemon has deleted what the build pulled; `timings()` are final then. */
type DockerCollection = CollectedImages & { timings(): DockerTimings; saveFormat: DockerArchiveResult['saveFormat'] };

/**
 * The Docker engine: every image goes through the user's daemon (its mirrors, credentials, local-only
 * images). Per image: pull for exactly the requested platform (every progress event checked), check the
 * pulled image's platform, pin it under a private tag, put the user's tags back as they were, stream
 * `docker save` into the blob cache (layers gzip-compressed deterministically, verified against the
 * config's diff_ids; config verified against the image ID), remove the private tag. Then the same archive
 * writer as the registry engine writes the archive.
 */
export class DockerEngine implements ImageEngine {
  readonly name = 'docker' as const;
  readonly daemonVersion: string;
  private readonly opts: DockerEngineOptions;
  private readonly daemon: DaemonImages;
  private readonly acquirer: ImageAcquirer;
  private closed = false;

  constructor(docker: Docker, addr: DaemonAddress, version: string, opts: DockerEngineOptions) {
    this.daemonVersion = version;
    this.opts = opts;
    this.daemon = new DaemonImages(docker, addr, opts.keepImages ?? false);
    this.acquirer = new ImageAcquirer(this.daemon, new CredentialStore(opts.dockerConfigPath ? { dockerConfigPath: opts.dockerConfigPath } : {}));
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  async archive(req: ImageArchiveRequest): Promise<DockerArchiveResult> {
    const collected = await this.collect(req);
    const ta = performance.now();
    // Waits for the collection's done: the daemon's deletions run beside the writing.
    const written = await writeCollected([collected], req);
    const t = collected.timings();
    const archive = (performance.now() - ta) / 1000;
    return { ...written, timings: { ...t, archive }, saveFormat: collected.saveFormat };
  }

  /**
   * Every image pulled (or found), checked and saved into the blob cache. Every blob is in when this
   * returns (`blobReady` has nothing to wait for); the daemon may still be deleting what the build
   * pulled: `done` and `stop` wait for that (also after a failure, the private tags are gone when this
   * rejects).
   */
  async collect(req: ImageCollectRequest): Promise<DockerCollection> {
    if (this.closed) throw new InternalError('docker engine is closed');
    const t0 = performance.now();
    const refs = parseImageRefs(req.images);
    const cache = new BlobCache(req.cacheDir);
    const level = this.opts.gzipLevel ?? 1;
    if (!Number.isInteger(level) || level < 1 || level > 9) throw new UserError(`gzip level ${level} is not 1..9`, { code: 'usage' });
    const store = new LayerStore(cache, req.cacheDir, level);
    await store.init();
    const internal = new AbortController();
    const signal = req.signal ? AbortSignal.any([req.signal, internal.signal]) : internal.signal;
    // Pinned images stay until every image is pulled: layers shared between images are pulled once
    // (removing an image as soon as it is saved would delete shared base layers a later pull needs).
    const progress = req.progress ?? silentSink;
    let removals = 0;
    const unpin = new Unpinner(async (tag) => {
      // The build waits for the daemon's deletions (as long as the pulls on a daemon with many small files): say so once.
      if (removals++ === 0) {
        progress.note(`Docker daemon at ${this.daemon.addr.display}`, `removing this build's ${unpin.count} private tags one at a time: the daemon deletes what the build pulled, and the build waits for it (--keep-images keeps the images)`);
      }
      await this.daemon.removeRef(tag);
    });
    const run: CollectRun = { cache, store, signal, progress, phases: { pull: new PhaseClock(), save: new PhaseClock() }, unpin, toPull: refs.length };
    let resolved: Resolved[];
    try {
      resolved = await this.resolveAll(refs, req, run, internal);
    } catch (e) {
      await unpin.finish();
      throw e;
    }
    const unpinned = unpin.finish();
    const formats = new Set(resolved.map((r) => r.format));
    return {
      images: resolved.map((r) =>
        collectedFor(req.platform, {
          ref: r.ref.canonical,
          platform: r.platform,
          manifest: { digest: r.manifest.digest, size: r.manifest.size, mediaType: MT.ociManifest, bytes: r.manifest.bytes },
          config: { digest: r.config.digest, size: r.config.size, mediaType: MT.ociConfig },
          layers: r.layers,
        }, 'docker'),
      ),
      blobReady: () => Promise.resolve(),
      done: unpinned,
      stop: () => unpinned.then(() => []),
      timings: () => ({ pull: run.phases.pull.seconds(), save: run.phases.save.seconds(), unpin: unpin.seconds(), archive: 0, total: (performance.now() - t0) / 1000 }),
      saveFormat: formats.size === 1 ? [...formats][0]! : 'mixed',
    };
  }

  /** Every image at most `concurrency` at a time; the first failure stops the others and is the one reported. */
  private async resolveAll(refs: { input: string; ref: ImageRef }[], req: ImageCollectRequest, run: CollectRun, internal: AbortController): Promise<Resolved[]> {
    const limit = createLimiter(Math.max(1, Math.floor(req.concurrency ?? this.opts.concurrency ?? DEFAULT_CONCURRENCY)));
    const policyOf = (input: string, ref: ImageRef) => req.pullPolicy?.[input] ?? req.pullPolicy?.[ref.canonical] ?? 'always';
    const settled = await Promise.allSettled(
      refs.map(({ input, ref }) =>
        limit(() => this.processImage(ref, policyOf(input, ref), req.platform, run)).catch((e: unknown) => {
          // Once one image failed (or the caller aborted), the others' errors are consequences of the
          // abort (a pull cut off mid-stream reads as a reset connection), never the reported cause.
          if (run.signal.aborted) throw anotherFailed(e);
          internal.abort(anotherFailed());
          throw e;
        }),
      ),
    );
    const failures = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => s.reason as unknown);
    if (failures.length > 0) {
      if (req.signal?.aborted) throw abortReason(req.signal);
      throw failures.find((e) => e instanceof UserError) ?? rootCause(failures, req.signal);
    }
    return settled.map((s) => (s as PromiseFulfilledResult<Resolved>).value);
  }

  private async processImage(ref: ImageRef, policy: 'always' | 'never', want: Platform, c: CollectRun): Promise<Resolved> {
    const item = ref.canonical;
    c.progress.start(item);
    const daemonName = ref.digest ? `${ref.registry}/${ref.repository}@${ref.digest}` : `${ref.registry}/${ref.repository}:${ref.tag ?? 'latest'}`;
    const privateTag = this.privateTag(item, want);
    // Pull (or find) and pin under the private tag, with the user's references put back as they were.
    if (!this.opts.keepImages) c.unpin.pinned(privateTag);
    const pinned = await this.daemon.withLock(daemonName, () =>
      c.phases.pull.time(() => (policy === 'never' ? this.acquirer.pinLocal(item, daemonName, want, privateTag) : this.acquirer.pullAndPin(ref, daemonName, want, privateTag, c))),
    );
    if (--c.toPull === 0) c.unpin.allPulled();
    let saved: ExportedImage | undefined = await exportedFromCache(pinned, c.cache, c.store);
    let format: Resolved['format'] = 'cache';
    if (!saved) {
      const s = await c.phases.save.time(() => exportImage(this.daemon, item, privateTag, pinned.Id, c));
      saved = s;
      format = s.format;
    }
    c.unpin.done(privateTag);
    return resolvedImage(ref, want, saved, format, c.progress);
  }

  /** `kubeprepare.local/keep/<hash>:<arch>` with keepImages, else a tag unique to this process and call. */
  private privateTag(item: string, want: Platform): string {
    const archTag = formatPlatform(want).replace(/^linux\//, '').replace(/\//g, '-');
    const hash = createHash('sha256').update(item).digest('hex').slice(0, 16);
    return this.opts.keepImages
      ? `kubeprepare.local/keep/${hash}:${archTag}`
      : `${this.opts.tempRepository ?? 'kubeprepare.local/tmp'}/${hash}-${process.pid}-${randomBytes(3).toString('hex')}:${archTag}`;
  }
}

/** The saved image checked against `want` by its config, with the OCI manifest the archive stores for it. */
function resolvedImage(ref: ImageRef, want: Platform, saved: ExportedImage, format: Resolved['format'], progress: ProgressSink): Resolved {
  const item = ref.canonical;
  const cfgPlat = configPlatform(item, saved.configBytes);
  if (!platformMatches(want, cfgPlat)) {
    throw new UserError(`${item} in the Docker daemon is ${formatPlatform(cfgPlat)}, not ${formatPlatform(want)} (by its config)`, {
      code: 'platform',
        kind: 'runtime',
      hint: 'the daemon holds another architecture of this image; the docker engine never saves a wrong architecture',
    });
  }
  const manifestJson = `${JSON.stringify({
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    config: { mediaType: MT.ociConfig, digest: saved.config.digest, size: saved.config.size },
    layers: saved.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  })}`;
  const lower = lowerVariantNote(want, cfgPlat);
  if (lower) progress.note(item, lower);
  const bytes = Buffer.from(manifestJson, 'utf8');
  const total = saved.config.size + saved.layers.reduce((s, l) => s + l.size, 0);
  progress.done(item, `${fmtBytes(total)}, ${saved.layers.length} layers, ${formatPlatform(cfgPlat)}${format === 'cache' ? ', from cache' : ''}`);
  return { ref, platform: cfgPlat, config: saved.config, layers: saved.layers, manifest: { digest: sha256Digest(bytes), size: bytes.length, bytes }, format };
}
