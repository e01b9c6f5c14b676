import { InternalError, abortError } from '../../errors.js';
import { debug } from '../../util/debug.js';
import { parseImageRefs } from '../../manifest/image-ref.js';
import { BlobCache } from '../../oci/blob-cache.js';
import { CredentialStore } from '../../oci/credentials.js';
import type { Descriptor } from '../../oci/descriptor.js';
import { formatPlatform } from '../../oci/platform.js';
import { heldSink, reportCached, silentSink, type ProgressSink } from '../../progress/sink.js';
import { createLimiter } from '../../util/limit.js';
import type { RetryOptions } from '../../util/retry.js';
import type { CollectedImages, ImageArchiveRequest, ImageArchiveResult, ImageCollectRequest, ImageEngine } from '../types.js';
import { collectedFor, lowerVariantNote, rootCause, writeCollected } from '../write.js';
import { RegistryClient } from './client.js';
import { emptyRegistriesConfig, type RegistriesConfig } from './mirrors.js';
import { ImageResolver, type ResolvedImage } from './resolve.js';

export interface RegistryEngineOptions {
  /** Mirrors, rewrites, per-host auth and TLS (see loadRegistriesConfig). */
  registries?: RegistriesConfig;
  /** Docker config with `auths`/`credsStore`/`credHelpers`; default `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. */
  dockerConfigPath?: string;
  /**
   * Talk to loopback hosts only (127.0.0.0/8, ::1, localhost): non-loopback endpoints (including the
   * upstream fallback), token realms and redirect targets are refused. Default: true when the
   * environment has `KP_OFFLINE=1`. The test suite always sets it.
   */
  offline?: boolean;
  /** Do not fall back to the registry's own endpoint after the mirrors (K3s' `disable-default-registry-endpoint`). */
  noUpstreamFallback?: boolean;
  /** Retry policy for 429/5xx/dropped connections (defaults: 5 tries, 500 ms base, 30 s cap). */
  retry?: Partial<RetryOptions>;
  /** Socket idle timeout per request (default 60 s). */
  timeoutMs?: number;
  userAgent?: string;
}

const DEFAULT_CONCURRENCY = 4;

/** The daemonless engine: pulls from registries (through mirrors) into a verified blob cache, then writes the archive. */
export function createRegistryEngine(opts: RegistryEngineOptions = {}): ImageEngine {
  return new RegistryEngine(opts);
}

/**
 * One-shot helper for commands (`kubeprepare images`): creates an engine, writes the archive, closes the engine.
 */
export async function archiveImages(req: ImageArchiveRequest, opts: RegistryEngineOptions = {}): Promise<ImageArchiveResult> {
  const engine = createRegistryEngine(opts);
  try {
    return await engine.archive(req);
  } finally {
    await engine.close();
  }
}

class RegistryEngine implements ImageEngine {
  readonly name = 'registry' as const;
  private readonly registries: RegistriesConfig;
  private readonly offline: boolean;
  private readonly client: RegistryClient;
  private readonly resolver: ImageResolver;
  private closed = false;
  /** Downloads by digest across this engine's collects (a build's bundles run at once): each blob fetched once. */
  private readonly inflight = new Map<string, Promise<void>>();
  /** Blobs this engine downloaded (and hashed on the way in) in this run: the archive writer does not hash them again. */
  private readonly fetchedNow = new Set<string>();
  /**
   * Blob downloads of every collect of this engine share one limit (a build's bundles collect at once:
   * `--concurrency` downloads in all, not per bundle), made with the first collect's concurrency; the
   * earlier collect's downloads go first (its archive is written first), within one lowest digest first.
   */
  private downloadLimit: ReturnType<typeof createLimiter> | undefined;
  private collects = 0;

  constructor(opts: RegistryEngineOptions) {
    this.registries = opts.registries ?? emptyRegistriesConfig();
    this.offline = opts.offline ?? process.env.KP_OFFLINE === '1';
    const credentials = new CredentialStore({ registries: this.registries, dockerConfigPath: opts.dockerConfigPath });
    this.client = new RegistryClient({
      credentials,
      offline: this.offline,
      retry: opts.retry,
      timeoutMs: opts.timeoutMs,
      userAgent: opts.userAgent,
    });
    this.resolver = new ImageResolver(this.client, this.registries, this.offline, opts.noUpstreamFallback);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }

  async archive(req: ImageArchiveRequest): Promise<ImageArchiveResult> {
    // The archive is written while the downloads run; each blob is added once it is verified.
    return writeCollected([await this.collect(req)], req);
  }

  async collect(req: ImageCollectRequest): Promise<CollectedImages> {
    if (this.closed) throw new InternalError('registry engine is closed');
    const progress = req.progress ?? silentSink;
    const refs = parseImageRefs(req.images).map((r) => r.ref);
    const cache = new BlobCache(req.cacheDir);
    await cache.init();
    const concurrency = Math.max(1, Math.floor(req.concurrency ?? DEFAULT_CONCURRENCY));

    // One failure stops the rest of this build promptly (and no temp files are left behind).
    const internal = new AbortController();
    const signal = req.signal ? AbortSignal.any([req.signal, internal.signal]) : internal.signal;
    const fail = (e: unknown) => {
      internal.abort(abortError());
      throw e;
    };
    // Manifests and configs take `concurrency` requests, blob downloads as many more: an image's blobs
    // start downloading once it is resolved, while the others are still resolved (the small requests of
    // resolving leave the line mostly idle), waiting ones lowest digest first, the order the archive is
    // written in (see DownloadSet).
    const resolveLimit = createLimiter(concurrency);
    const downloadLimit = (this.downloadLimit ??= createLimiter(concurrency));
    const seq = String(this.collects++).padStart(6, '0');
    // Progress is held until every image is resolved and announced (its total known), so that a view's
    // totals are complete from its first line; the bytes of the downloads that started early follow.
    const shown = heldSink(progress);
    const blobs = new DownloadSet(cache, shown, (img, desc, what) =>
      this.once(desc.digest, () =>
        downloadLimit(() => {
          signal.throwIfAborted();
          return this.resolver.fetchBlob(cache, img, desc, what, signal, (n) => shown.bytes(img.ref.canonical, n));
        }, `${seq}:${desc.digest}`).catch(fail),
      ),
    );

    // Every image resolved (its manifest, and its config to check the platform) before anything is written.
    const settled = await Promise.allSettled(
      refs.map((r) =>
        resolveLimit(() => this.resolver.resolve(r, req.platform, cache, signal))
          .then((img) => {
            blobs.add(img);
            return img;
          })
          .catch(fail),
      ),
    );
    const rejected = settled.filter((x): x is PromiseRejectedResult => x.status === 'rejected').map((x) => x.reason as unknown);
    if (rejected.length > 0) {
      // The downloads already started stop too; one of them may be what failed first.
      throw rootCause([...rejected, ...(await blobs.stopped())], req.signal);
    }
    const resolved = settled.map((x) => (x as PromiseFulfilledResult<ResolvedImage>).value);
    for (const img of resolved) {
      const lower = lowerVariantNote(req.platform, img.platform);
      if (lower) progress.note(img.ref.canonical, lower);
    }
    // Every image announced in request order, then what the early downloads reported meanwhile.
    for (const img of resolved) shown.start(img.ref.canonical, imageSize(img));
    shown.release();
    return this.collection(req, resolved, blobs, cache, signal, () => internal.abort(abortError()));
  }

  /** A blob already on its way (another collect of this engine: a build's bundles run at once) is shared, not fetched again. */
  private once(digest: string, start: () => Promise<void>): Promise<void> {
    const running = this.inflight.get(digest);
    if (running) return running;
    const p = start();
    this.inflight.set(digest, p);
    p.then(() => this.fetchedNow.add(digest), () => this.inflight.delete(digest));
    return p;
  }

  /** What `collect` hands the archive writer (see ../README.md for the protocol). */
  private collection(req: ImageCollectRequest, resolved: ResolvedImage[], blobs: DownloadSet, cache: BlobCache, signal: AbortSignal, abort: () => void): CollectedImages {
    const { owner, verifiedNow } = blobs;
    return {
      images: resolved.map((r) =>
        collectedFor(req.platform, {
          ref: r.ref.canonical,
          platform: r.platform,
          manifest: { digest: r.manifest.digest, size: r.manifest.size, mediaType: r.manifest.mediaType },
          config: { digest: r.config.digest, size: r.config.size, mediaType: r.config.mediaType },
          layers: r.layers,
        }, 'registry'),
      ),
      blobReady: (d) => blobs.ready.get(d) ?? Promise.resolve(),
      done: blobs.done(),
      stop: async () => {
        // Wait until every download has stopped and removed its temp file; report what failed.
        abort();
        return blobs.stopped();
      },
      // A cached blob the archive writer found corrupt (and evicted): fetched again, verified.
      refetch: async (d: string) => {
        const blob = owner.get(d);
        if (blob) {
          await this.resolver.fetchBlob(cache, blob.img, blob.desc, blob.what, signal);
          verifiedNow.add(d);
          return true;
        }
        const img = resolved.find((r) => r.manifest.digest === d);
        if (!img) return false;
        await this.resolver.getManifest(img.endpoint, img.ref, d, img.manifest.digest, cache, signal, img.manifest.size);
        verifiedNow.add(d);
        return true;
      },
      // Downloaded (hashed on the way in) or, manifests and configs, hashed as they were read when
      // resolved: only layers taken from an earlier build's cache are hashed again by the archive writer.
      // A blob another collect of this engine downloaded in this run (a build's other bundle) counts too.
      verifiedNow: (d: string) => verifiedNow.has(d) || this.fetchedNow.has(d),
    };
  }
}

/**
 * The blobs of one collect, added an image at a time as each is resolved: who owns each blob, when it is
 * in the cache (`ready`: found there, or downloaded through `fetch`, each once), what was verified in this
 * run, and the progress per image (cached bytes, done when all its blobs are in the cache; the caller
 * announces each image).
 */
class DownloadSet {
  readonly owner = new Map<string, { img: ResolvedImage; what: string; desc: Descriptor }>();
  /** Per blob: resolves once it is in the cache; rejects when its download failed. */
  readonly ready = new Map<string, Promise<void>>();
  /** Per blob: whether it was in the cache before this collect (known once the cache was asked). */
  private readonly cachedBefore = new Map<string, Promise<boolean>>();
  /** Manifests and configs (hashed when resolved) and the blobs downloaded in this run. */
  readonly verifiedNow = new Set<string>();
  private readonly perImage: Promise<void>[] = [];

  constructor(
    private readonly cache: BlobCache,
    private readonly progress: ProgressSink,
    private readonly fetch: (img: ResolvedImage, desc: Descriptor, what: string) => Promise<void>,
  ) {}

  /** Starts the downloads of `img`'s blobs that are neither in the cache nor on their way already. */
  add(img: ResolvedImage): void {
    this.verifiedNow.add(img.manifest.digest);
    this.verifiedNow.add(img.config.digest);
    for (const [desc, what] of [[img.config, 'config'] as const, ...img.layers.map((l) => [l, 'layer'] as const)]) {
      const d = desc.digest;
      if (this.owner.has(d)) continue;
      this.owner.set(d, { img, what, desc });
      const cached = this.cache.has(desc);
      this.cachedBefore.set(d, cached.catch(() => false));
      const ready = cached.then(async (hit) => {
        if (hit) {
          debug('cache', `hit: ${what} ${d} of ${img.ref.canonical}`);
          return;
        }
        await this.fetch(img, desc, what);
        this.verifiedNow.add(d);
      });
      ready.catch(() => {}); // observed by the writer, done() and stopped()
      this.ready.set(d, ready);
    }
    const tracked = this.track(img);
    tracked.catch(() => {}); // observed through done()
    this.perImage.push(tracked);
  }

  /** Progress of one image: cached bytes at once, done when all of its blobs are in the cache. */
  private async track(img: ResolvedImage): Promise<void> {
    const blobs = [img.config, ...img.layers];
    const hits = await Promise.all(blobs.map((b) => this.cachedBefore.get(b.digest)!));
    const cached = blobs.filter((_, i) => hits[i]);
    for (const b of cached) reportCached(this.progress, img.ref.canonical, b.size);
    await Promise.all(blobs.map((b) => this.ready.get(b.digest)));
    if (cached.length > 0) this.progress.note(img.ref.canonical, `${cached.length} of ${blobs.length} blobs from cache`);
    this.progress.done(img.ref.canonical, `${formatBytes(imageSize(img))}, ${img.layers.length} layers${cached.length ? `, ${cached.length} cached` : ''}, ${formatPlatform(img.platform)}`);
  }

  /** Every image's blobs in the cache and its progress reported. */
  done(): Promise<void> {
    const all = Promise.all(this.perImage).then(() => {});
    all.catch(() => {}); // observed by the writer
    return all;
  }

  /** Waits until every download has stopped (its temp file removed); the failures. */
  async stopped(): Promise<unknown[]> {
    const results = await Promise.allSettled(this.ready.values());
    return results.filter((x): x is PromiseRejectedResult => x.status === 'rejected').map((x) => x.reason as unknown);
  }
}

function imageSize(img: { config: Descriptor; layers: Descriptor[] }): number {
  return img.config.size + img.layers.reduce((s, l) => s + l.size, 0);
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GB`;
}
