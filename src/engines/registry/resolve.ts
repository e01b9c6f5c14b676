import type { HttpResponse } from './fast-http.js';
import { UserError, fsError, isAbort, isMachineFailure } from '../../errors.js';
import { debug } from '../../util/debug.js';
import { refReference, type ImageRef } from '../../manifest/image-ref.js';
import type { BlobCache } from '../../oci/blob-cache.js';
import type { BlobRef, Descriptor } from '../../oci/descriptor.js';
import { isDigest, sha256Digest, type Digest } from '../../oci/digest.js';
import { configPlatform, formatPlatform, platformMatches, type Platform as ImagePlatform } from '../../oci/platform.js';
import type { Platform } from '../../platform.js';
import type { RegistryClient } from './client.js';
import { RegistryAuthError, RegistryHttpError } from './errors.js';
import { MANIFEST_ACCEPT, parseManifest, platformError, selectPlatform, type ParsedManifest } from './manifest.js';
import { resolveEndpoints, type Endpoint, type RegistriesConfig } from './mirrors.js';

const MANIFEST_LIMIT = 4 << 20;

/** One image resolved at one endpoint: its platform-specific manifest, config and layers. */
export interface ResolvedImage {
  ref: ImageRef;
  endpoint: Endpoint;
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  platform: ImagePlatform;
}

/**
 * Resolves references to platform-specific manifests through the endpoints (mirrors, then the
 * registry), every manifest and config verified and cached; fetches blobs into the cache.
 */
export class ImageResolver {
  constructor(
    private readonly client: RegistryClient,
    private readonly registries: RegistriesConfig,
    private readonly offline: boolean,
    private readonly noUpstreamFallback: boolean | undefined,
  ) {}

  /** Resolves `ref` to its platform-specific manifest, trying the endpoints in order. */
  async resolve(ref: ImageRef, want: Platform, cache: BlobCache, signal: AbortSignal): Promise<ResolvedImage> {
    const endpoints = resolveEndpoints(this.registries, ref.registry, ref.repository, {
      offline: this.offline,
      noUpstreamFallback: this.noUpstreamFallback,
    });
    const errors: { ep: Endpoint; error: unknown }[] = [];
    debug('mirror', `${ref.canonical}: endpoints ${endpoints.map((e) => `${e.apiBase}${e.isDefault ? ' (registry)' : ' (mirror)'}`).join(', ')}`);
    for (const ep of endpoints) {
      try {
        return await this.resolveAt(ep, ref, want, cache, signal);
      } catch (e) {
        if (signal.aborted || !fallsThrough(e)) throw e;
        errors.push({ ep, error: e });
        debug('mirror', `${ref.canonical}: ${ep.apiBase} failed (${(e as Error).message.split('\n')[0]}); ${errors.length < endpoints.length ? 'falling back to the next endpoint' : 'no endpoint left'}`);
      }
    }
    if (errors.length === 1) throw toUserError(errors[0]!.error, ref.canonical, errors[0]!.ep);
    const lines = errors.map(({ ep, error }) => `  ${ep.apiBase} (${ep.isDefault ? 'registry' : 'mirror'}): ${toUserError(error, ref.canonical, ep).message}`);
    throw UserError.runtime(toUserError(errors.at(-1)!.error, ref.canonical, errors.at(-1)!.ep).code, `cannot pull ${ref.canonical} from any endpoint:\n${lines.join('\n')}`, 'check the mirrors in registries.yaml, credentials and the image name/tag');
  }

  private async resolveAt(ep: Endpoint, ref: ImageRef, want: Platform, cache: BlobCache, signal: AbortSignal): Promise<ResolvedImage> {
    const top = await this.getManifest(ep, ref, refReference(ref), ref.digest, cache, signal);
    let manifestDesc: Descriptor;
    let manifest: Extract<ParsedManifest, { kind: 'manifest' }>;
    let platform: ImagePlatform;
    if (top.parsed.kind === 'index') {
      const entry = selectPlatform(ref.canonical, top.parsed.manifests, want);
      const child = await this.getManifest(ep, ref, entry.digest, entry.digest, cache, signal, entry.size);
      if (child.parsed.kind !== 'manifest') {
        throw UserError.runtime('unsupported', `${ref.canonical}: the ${formatPlatform(want)} entry ${entry.digest} is a nested index, which is not supported`);
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
  async getManifest(
    ep: Endpoint,
    ref: ImageRef,
    reference: string,
    expectDigest: Digest | undefined,
    cache: BlobCache,
    signal: AbortSignal,
    expectSize?: number,
  ): Promise<{ parsed: ParsedManifest; digest: Digest; size: number }> {
    if (expectDigest) {
      // By digest: a cached copy needs no request; it is hashed again as it is read (a wrong one is evicted and fetched anew).
      const body = await cache.readVerified({ digest: expectDigest, size: expectSize });
      if (body) debug('cache', `hit: manifest ${expectDigest} of ${ref.canonical}`);
      if (body) return { parsed: parseManifest(ref.canonical, body, undefined), digest: expectDigest, size: body.length };
    }
    const { body, res } = await this.client.getBuffer(ep, ref.registry, `/${ep.repository}/manifests/${reference}`, {
      accept: MANIFEST_ACCEPT,
      signal,
      limit: MANIFEST_LIMIT,
    });
    const actual = sha256Digest(body);
    const headerDigest = String(res.headers['docker-content-digest'] ?? '');
    const want = expectDigest ?? (isDigest(headerDigest) ? headerDigest : undefined);
    if (want && want !== actual) {
      throw UserError.runtime(
        'digest-mismatch',
        `verification failed for the manifest ${reference} of ${ref.canonical} from ${ep.apiBase}: expected ${want}, got ${actual}`,
        'the registry or mirror served corrupted or tampered content; nothing was cached',
      );
    }
    if (expectSize !== undefined && body.length !== expectSize) {
      throw UserError.runtime('digest-mismatch', `verification failed for the manifest ${reference} of ${ref.canonical}: expected ${expectSize} bytes, got ${body.length}`);
    }
    const parsed = parseManifest(ref.canonical, body, res.headers['content-type']);
    await cache.putBuffer({ digest: actual, size: body.length }, body, ref.canonical, 'manifest');
    return { parsed, digest: actual, size: body.length };
  }

  /** Config blobs: read into memory (small), via the cache. */
  private async getSmallBlob(ep: Endpoint, ref: ImageRef, desc: Descriptor, what: string, cache: BlobCache, signal: AbortSignal): Promise<Buffer> {
    if (desc.size > MANIFEST_LIMIT) throw UserError.runtime('registry', `${what} ${desc.digest} of ${ref.canonical} is ${desc.size} bytes, more than the ${MANIFEST_LIMIT} allowed`);
    // The cached copy is hashed as it is read; a missing or wrong one is (again) fetched and verified.
    const cached = await cache.readVerified(desc);
    if (cached) debug('cache', `hit: ${what} ${desc.digest} of ${ref.canonical}`);
    if (cached) return cached;
    await this.fetchBlob(cache, { ref, endpoint: ep }, desc, what, signal);
    return cache.read(desc);
  }

  async fetchBlob(cache: BlobCache, img: { ref: ImageRef; endpoint: Endpoint }, desc: BlobRef, what: string, signal: AbortSignal, onBytes?: (n: number) => void): Promise<void> {
    const ep = img.endpoint;
    try {
      await cache.download(desc, {
        image: img.ref.canonical,
        what,
        retry: this.client.retry,
        signal,
        onBytes,
        open: (offset: number): Promise<HttpResponse> =>
          this.client.get(ep, img.ref.registry, `/${ep.repository}/blobs/${desc.digest}`, { rangeStart: offset, signal, blob: true }),
      });
    } catch (e) {
      if (signal.aborted && !(e instanceof UserError)) throw e;
      throw toUserError(e, img.ref.canonical, ep, `${what} ${desc.digest}`);
    }
  }
}

/** Errors after which the next endpoint is worth a try (K3s/containerd fall through on these too). */
function fallsThrough(e: unknown): boolean {
  if (e instanceof RegistryHttpError || e instanceof RegistryAuthError) return true;
  if (e instanceof UserError || isMachineFailure(e)) return false;
  return e instanceof Error && !isAbort(e);
}

function toUserError(e: unknown, image: string, ep: Endpoint, what?: string): UserError {
  if (e instanceof UserError) return e;
  if (isMachineFailure(e)) return fsError(e) as UserError; // the cache's filesystem, never "cannot reach"
  const subject = what ? `${what} of ${image}` : image;
  if (e instanceof RegistryHttpError) {
    if (e.status === 404) {
      return UserError.runtime(
        'not-found',
        `${subject} not found at ${e.url} (HTTP 404${e.body ? `: ${e.body.replace(/\s+/g, ' ').slice(0, 200)}` : ''})`,
        what ? 'the registry lost a blob its manifest references; re-push the image' : 'check the image name and tag, and that the mirror holds the image',
      );
    }
    return UserError.runtime('registry', `fetching ${subject} failed: ${e.message}`, 'the registry or mirror is failing; try again later');
  }
  const err = e as NodeJS.ErrnoException;
  return UserError.runtime(
    'network',
    `cannot reach ${ep.apiBase} for ${subject}: ${err?.code ? `${err.code} ` : ''}${err?.message ?? String(e)}`,
    'check that the registry or mirror is running and reachable',
    e,
  );
}
