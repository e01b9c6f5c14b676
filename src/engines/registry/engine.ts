import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { UserError } from '../../errors.js';
import { parseImageRefs, refReference, type ImageRef } from '../../manifest/image-ref.js';
import { formatPlatform, platformExact, platformMatches, type Platform } from '../../platform.js';
import { silentSink, type ProgressSink } from '../../progress/sink.js';
import type { CollectedImages, ImageArchiveRequest, ImageArchiveResult, ImageCollectRequest, ImageEngine } from '../types.js';
import { collectedImage, lowerVariantNote, rootCause, writeCollected } from '../write.js';
import { CredentialStore } from './auth.js';
import { BlobCache, type BlobRef } from './blob-cache.js';
import { RegistryAuthError, RegistryClient, RegistryHttpError } from './client.js';
import { abortError, type RetryOptions } from './http.js';
import { configPlatform, DIGEST_RE, MANIFEST_ACCEPT, parseManifest, platformError, selectPlatform, type Descriptor, type ParsedManifest } from './manifest.js';
import { emptyRegistriesConfig, resolveEndpoints, type Endpoint, type RegistriesConfig } from './mirrors.js';

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

const MANIFEST_LIMIT = 4 << 20;
const DEFAULT_CONCURRENCY = 4;

interface ResolvedImage {
  ref: ImageRef;
  endpoint: Endpoint;
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  platform: { os: string; architecture: string; variant?: string };
}

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
  private readonly opts: RegistryEngineOptions;
  private readonly registries: RegistriesConfig;
  private readonly offline: boolean;
  private readonly client: RegistryClient;
  private closed = false;
  /** Downloads by digest across this engine's collects (a build's bundles run at once): each blob fetched once. */
  private readonly inflight = new Map<string, Promise<void>>();

  constructor(opts: RegistryEngineOptions) {
    this.opts = opts;
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
    if (this.closed) throw new Error('registry engine is closed');
    const progress = req.progress ?? silentSink;
    const refs = parseImageRefs(req.images).map((r) => r.ref);
    const cache = new BlobCache(req.cacheDir);
    await cache.init();
    const concurrency = Math.max(1, Math.floor(req.concurrency ?? DEFAULT_CONCURRENCY));

    // One failure stops the rest of this build promptly (and no temp files are left behind).
    const internal = new AbortController();
    const signal = req.signal ? AbortSignal.any([req.signal, internal.signal]) : internal.signal;
    const limit = createLimiter(concurrency);
    const fail = (e: unknown) => {
      internal.abort(abortError());
      throw e;
    };

    // 1. Manifests (and configs, to check the platform) for every image, before anything is written.
    const settled = await Promise.allSettled(refs.map((r) => limit(() => this.resolve(r, req.platform, cache, signal)).catch(fail)));
    const rejected = settled.filter((x): x is PromiseRejectedResult => x.status === 'rejected').map((x) => x.reason as unknown);
    if (rejected.length > 0) throw rootCause(rejected, req.signal);
    const resolved = settled.map((x) => (x as PromiseFulfilledResult<ResolvedImage>).value);
    for (const img of resolved) {
      const lower = lowerVariantNote(req.platform, img.platform);
      if (lower) progress.note(img.ref.canonical, lower);
    }

    // 2. Blob downloads, each unique blob once (in archive order, so the writer can follow them).
    const owner = new Map<string, { img: ResolvedImage; what: string; desc: Descriptor }>();
    for (const img of resolved) {
      for (const [desc, what] of [[img.config, 'config'] as const, ...img.layers.map((l) => [l, 'layer'] as const)]) {
        if (!owner.has(desc.digest)) owner.set(desc.digest, { img, what, desc });
      }
    }
    const verifiedNow = new Set<string>([...resolved.flatMap((r) => [r.manifest.digest, r.config.digest])]);
    const cachedBefore = new Set<string>();
    for (const d of owner.keys()) if (await cache.has(owner.get(d)!.desc)) cachedBefore.add(d);
    const downloads = new Map<string, Promise<void>>();
    for (const img of resolved) {
      progress.start(img.ref.canonical, imageSize(img));
    }
    for (const d of [...owner.keys()].sort()) {
      if (cachedBefore.has(d)) continue;
      const shared = this.inflight.get(d);
      if (shared) {
        downloads.set(d, shared);
        continue;
      }
      const { img, what, desc } = owner.get(d)!;
      const p = limit(() => {
        signal.throwIfAborted();
        return this.fetchBlob(cache, img, desc, what, signal, (n) => progress.bytes(img.ref.canonical, n));
      }).catch(fail);
      p.catch(() => this.inflight.delete(d)); // observed below and by the writer
      downloads.set(d, p);
      this.inflight.set(d, p);
    }
    // Progress per image: done when all of its blobs are in the cache.
    const perImage = resolved.map(async (img) => {
      const blobs = [img.config, ...img.layers];
      const cached = blobs.filter((b) => cachedBefore.has(b.digest));
      for (const b of cached) progress.bytes(img.ref.canonical, b.size);
      await Promise.all(blobs.map((b) => downloads.get(b.digest)));
      if (cached.length > 0) progress.note(img.ref.canonical, `${cached.length} of ${blobs.length} blobs from cache`);
      progress.done(img.ref.canonical, `${formatBytes(imageSize(img))}, ${img.layers.length} layers${cached.length ? `, ${cached.length} cached` : ''}, ${formatPlatform(img.platform)}`);
    });
    const done = Promise.all(perImage).then(() => {});
    done.catch(() => {}); // observed by the writer

    return {
      images: resolved.map((r) =>
        collectedImage({
          ref: r.ref.canonical,
          platform: r.platform,
          indexPlatform: platformExact(req.platform, r.platform),
          manifest: { digest: r.manifest.digest, size: r.manifest.size, mediaType: r.manifest.mediaType },
          config: { digest: r.config.digest, size: r.config.size, mediaType: r.config.mediaType },
          layers: r.layers,
        }, 'registry'),
      ),
      blobReady: (d) => downloads.get(d) ?? Promise.resolve(),
      done,
      stop: async () => {
        // Wait until every download has stopped and removed its temp file; report what failed.
        internal.abort(abortError());
        const results = await Promise.allSettled(downloads.values());
        return results.filter((x): x is PromiseRejectedResult => x.status === 'rejected').map((x) => x.reason as unknown);
      },
      // A cached blob the archive writer found corrupt (and evicted): fetched again, verified.
      refetch: async (d: string) => {
        const blob = owner.get(d);
        if (blob) {
          await this.fetchBlob(cache, blob.img, blob.desc, blob.what, signal);
          verifiedNow.add(d);
          return true;
        }
        const img = resolved.find((r) => r.manifest.digest === d);
        if (!img) return false;
        await this.getManifest(img.endpoint, img.ref, d, d, cache, signal, img.manifest.size);
        verifiedNow.add(d);
        return true;
      },
      // Downloaded (hashed on the way in) or, manifests and configs, hashed as they were read in step 1:
      // only layers taken from an earlier build's cache are hashed again by the archive writer.
      verifiedNow: (d: string) => verifiedNow.has(d) || downloads.has(d),
    };
  }

  /** Resolves `ref` to its platform-specific manifest, trying the endpoints in order. */
  private async resolve(ref: ImageRef, want: Platform, cache: BlobCache, signal: AbortSignal): Promise<ResolvedImage> {
    const endpoints = resolveEndpoints(this.registries, ref.registry, ref.repository, {
      offline: this.offline,
      noUpstreamFallback: this.opts.noUpstreamFallback,
    });
    const errors: { ep: Endpoint; error: unknown }[] = [];
    for (const ep of endpoints) {
      try {
        return await this.resolveAt(ep, ref, want, cache, signal);
      } catch (e) {
        if (signal.aborted || !fallsThrough(e)) throw e;
        errors.push({ ep, error: e });
      }
    }
    if (errors.length === 1) throw toUserError(errors[0]!.error, ref.canonical, errors[0]!.ep);
    const lines = errors.map(({ ep, error }) => `  ${ep.apiBase} (${ep.isDefault ? 'registry' : 'mirror'}): ${toUserError(error, ref.canonical, ep).message}`);
    throw UserError.runtime(`cannot pull ${ref.canonical} from any endpoint:\n${lines.join('\n')}`, 'check the mirrors in registries.yaml, credentials and the image name/tag');
  }

  private async resolveAt(ep: Endpoint, ref: ImageRef, want: Platform, cache: BlobCache, signal: AbortSignal): Promise<ResolvedImage> {
    const top = await this.getManifest(ep, ref, refReference(ref), ref.digest, cache, signal);
    let manifestDesc: Descriptor;
    let manifest: Extract<ParsedManifest, { kind: 'manifest' }>;
    let platform: { os: string; architecture: string; variant?: string };
    if (top.parsed.kind === 'index') {
      const entry = selectPlatform(ref.canonical, top.parsed.manifests, want);
      const child = await this.getManifest(ep, ref, entry.digest, entry.digest, cache, signal, entry.size);
      if (child.parsed.kind !== 'manifest') {
        throw UserError.runtime(`${ref.canonical}: the ${formatPlatform(want)} entry ${entry.digest} is a nested index, which is not supported`);
      }
      manifest = child.parsed;
      manifestDesc = { mediaType: entry.mediaType || child.parsed.mediaType, digest: entry.digest, size: entry.size };
      const p = entry.platform ?? {};
      platform = { os: p.os ?? want.os, architecture: p.architecture ?? want.architecture, ...(p.variant ? { variant: p.variant } : {}) };
    } else {
      manifest = top.parsed;
      manifestDesc = { mediaType: top.parsed.mediaType, digest: top.digest, size: top.size };
      platform = { os: want.os, architecture: want.architecture };
    }
    // The config says what the image really is: check it (single-platform images carry no other platform record).
    const cfgBody = await this.getSmallBlob(ep, ref, manifest.config, 'config', cache, signal);
    const cfgPlat = configPlatform(ref.canonical, cfgBody);
    if (!platformMatches(want, cfgPlat)) {
      throw platformError(ref.canonical, want, [formatPlatform(cfgPlat)]);
    }
    if (top.parsed.kind !== 'index') platform = cfgPlat;
    return { ref, endpoint: ep, manifest: manifestDesc, config: manifest.config, layers: manifest.layers, platform };
  }

  /** A manifest by tag or digest; by digest it comes from the cache when present. Verified and cached. */
  private async getManifest(
    ep: Endpoint,
    ref: ImageRef,
    reference: string,
    expectDigest: string | undefined,
    cache: BlobCache,
    signal: AbortSignal,
    expectSize?: number,
  ): Promise<{ parsed: ParsedManifest; digest: string; size: number }> {
    if (expectDigest) {
      // By digest: a cached copy needs no request; it is hashed again as it is read (a wrong one is evicted and fetched anew).
      const body = await cache.readVerified({ digest: expectDigest, size: expectSize });
      if (body) return { parsed: parseManifest(ref.canonical, body, undefined), digest: expectDigest, size: body.length };
    }
    const { body, res } = await this.client.getBuffer(ep, ref.registry, `/${ep.repository}/manifests/${reference}`, {
      accept: MANIFEST_ACCEPT,
      signal,
      limit: MANIFEST_LIMIT,
    });
    const actual = sha256Digest(body);
    const headerDigest = String(res.headers['docker-content-digest'] ?? '');
    const want = expectDigest ?? (DIGEST_RE.test(headerDigest) ? headerDigest : undefined);
    if (want && want !== actual) {
      throw UserError.runtime(
        `verification failed for the manifest ${reference} of ${ref.canonical} from ${ep.apiBase}: expected ${want}, got ${actual}`,
        'the registry or mirror served corrupted or tampered content; nothing was cached',
      );
    }
    if (expectSize !== undefined && body.length !== expectSize) {
      throw UserError.runtime(`verification failed for the manifest ${reference} of ${ref.canonical}: expected ${expectSize} bytes, got ${body.length}`);
    }
    const parsed = parseManifest(ref.canonical, body, res.headers['content-type']);
    await cache.putBuffer({ digest: actual, size: body.length }, body, ref.canonical, 'manifest');
    return { parsed, digest: actual, size: body.length };
  }

  /** Config blobs: read into memory (small), via the cache. */
  private async getSmallBlob(ep: Endpoint, ref: ImageRef, desc: Descriptor, what: string, cache: BlobCache, signal: AbortSignal): Promise<Buffer> {
    if (desc.size > MANIFEST_LIMIT) throw UserError.runtime(`${what} ${desc.digest} of ${ref.canonical} is ${desc.size} bytes, more than the ${MANIFEST_LIMIT} allowed`);
    // The cached copy is hashed as it is read; a missing or wrong one is (again) fetched and verified.
    const cached = await cache.readVerified(desc);
    if (cached) return cached;
    await this.fetchBlob(cache, { ref, endpoint: ep }, desc, what, signal);
    return cache.read(desc);
  }

  private async fetchBlob(cache: BlobCache, img: { ref: ImageRef; endpoint: Endpoint }, desc: BlobRef, what: string, signal: AbortSignal, onBytes?: (n: number) => void): Promise<void> {
    const ep = img.endpoint;
    try {
      await cache.download(desc, {
        image: img.ref.canonical,
        what,
        retry: this.client.retry,
        signal,
        onBytes,
        open: (offset: number): Promise<IncomingMessage> =>
          this.client.get(ep, img.ref.registry, `/${ep.repository}/blobs/${desc.digest}`, { rangeStart: offset, signal }),
      });
    } catch (e) {
      if (signal.aborted && !(e instanceof UserError)) throw e;
      throw toUserError(e, img.ref.canonical, ep, `${what} ${desc.digest}`);
    }
  }
}

function imageSize(img: { config: Descriptor; layers: Descriptor[] }): number {
  return img.config.size + img.layers.reduce((s, l) => s + l.size, 0);
}

/** Errors after which the next endpoint is worth a try (K3s/containerd fall through on these too). */
function fallsThrough(e: unknown): boolean {
  if (e instanceof RegistryHttpError || e instanceof RegistryAuthError) return true;
  if (e instanceof UserError) return false;
  return e instanceof Error && e.name !== 'AbortError';
}

function toUserError(e: unknown, image: string, ep: Endpoint, what?: string): UserError {
  if (e instanceof UserError) return e;
  const subject = what ? `${what} of ${image}` : image;
  if (e instanceof RegistryHttpError) {
    if (e.status === 404) {
      return UserError.runtime(
        `${subject} not found at ${e.url} (HTTP 404${e.body ? `: ${e.body.replace(/\s+/g, ' ').slice(0, 200)}` : ''})`,
        what ? 'the registry lost a blob its manifest references; re-push the image' : 'check the image name and tag, and that the mirror holds the image',
      );
    }
    return UserError.runtime(`fetching ${subject} failed: ${e.message}`, 'the registry or mirror is failing; try again later');
  }
  const err = e as NodeJS.ErrnoException;
  return UserError.runtime(
    `cannot reach ${ep.apiBase} for ${subject}: ${err?.code ? `${err.code} ` : ''}${err?.message ?? String(e)}`,
    'check that the registry or mirror is running and reachable',
    e,
  );
}

function sha256Digest(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GB`;
}

/** At most `n` tasks at once. */
export function createLimiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: (() => void)[] = [];
  const next = () => {
    if (active >= n) return;
    const run = queue.shift();
    if (run) {
      active++;
      run();
    }
  };
  return <T>(fn: () => Promise<T>) =>
    new Promise<T>((resolve, reject) => {
      queue.push(() => {
        // A task that throws synchronously must reject its own promise, not escape into the queue.
        new Promise<T>((res) => res(fn()))
          .then(resolve, reject)
          .finally(() => {
            active--;
            next();
          });
      });
      next();
    });
}
