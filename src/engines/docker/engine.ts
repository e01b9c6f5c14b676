import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type Docker from 'dockerode';
import { UserError } from '../../errors.js';
import { parseImageRefs, type ImageRef } from '../../manifest/image-ref.js';
import type { Platform } from '../../platform.js';
import { acceptedPlatforms, configPlatform, formatPlatform, platformExact, platformMatches, type Platform as ImagePlatform } from '../../oci/platform.js';
import type { BlobRef } from '../../oci/descriptor.js';
import { isDigest, sha256Digest } from '../../oci/digest.js';
import { MT } from '../../oci/media-types.js';
import { silentSink, type ProgressSink } from '../../progress/sink.js';
import { fmtBytes } from '../../util/format.js';
import type { CollectedImages, ImageArchiveRequest, ImageArchiveResult, ImageCollectRequest, ImageEngine } from '../types.js';
import { anotherFailed, collectedImage, lowerVariantNote, rootCause, writeCollected } from '../write.js';
import { BlobCache } from '../../oci/blob-cache.js';
import { CredentialStore } from '../../oci/credentials.js';
import { createLimiter } from '../../util/limit.js';
import { connectDaemon, daemonAddress, noDaemon, type DaemonAddress } from './connect.js';
import { LayerStore, type StoredLayer } from './layers.js';
import { followPull } from './pull-stream.js';
import { readDockerSave } from './save-archive.js';

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
  archive: number;
  total: number;
}

export interface DockerArchiveResult extends ImageArchiveResult {
  timings: DockerTimings;
  /** The `docker save` format the daemon wrote (or 'cache' when every image came from the cache). */
  saveFormat: 'docker-archive' | 'oci-layout' | 'cache' | 'mixed';
}

const DEFAULT_CONCURRENCY = 3;
/** dockerd's words for "the image has no manifest for that platform" (moby distribution/pull_v2.go). */
const NO_PLATFORM = /no matching manifest|does not match the specified platform/i;

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

interface InspectInfo {
  Id: string;
  Os?: string;
  Architecture?: string;
  Variant?: string;
  RepoTags?: string[] | null;
  RepoDigests?: string[] | null;
  RootFS?: { Layers?: string[] };
}

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
  private readonly docker: Docker;
  private readonly addr: DaemonAddress;
  private readonly opts: DockerEngineOptions;
  private readonly credentials: CredentialStore;
  private readonly locks = new Map<string, Promise<unknown>>();
  private closed = false;

  constructor(docker: Docker, addr: DaemonAddress, version: string, opts: DockerEngineOptions) {
    this.docker = docker;
    this.addr = addr;
    this.daemonVersion = version;
    this.opts = opts;
    this.credentials = new CredentialStore(opts.dockerConfigPath ? { dockerConfigPath: opts.dockerConfigPath } : {});
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  async archive(req: ImageArchiveRequest): Promise<DockerArchiveResult> {
    const collected = await this.collect(req);
    const ta = performance.now();
    const written = await writeCollected([collected], req);
    const t = collected.timings;
    const archive = (performance.now() - ta) / 1000;
    return { ...written, timings: { ...t, archive, total: t.total + archive }, saveFormat: collected.saveFormat };
  }

  /**
   * Every image pulled (or found), checked and saved into the blob cache; the private tags are gone again
   * when this returns. Nothing is left running, so `blobReady`, `done` and `stop` have nothing to wait for.
   */
  async collect(req: ImageCollectRequest): Promise<CollectedImages & { timings: DockerTimings; saveFormat: DockerArchiveResult['saveFormat'] }> {
    if (this.closed) throw new Error('docker engine is closed');
    const t0 = performance.now();
    const progress = req.progress ?? silentSink;
    const refs = parseImageRefs(req.images);
    const cache = new BlobCache(req.cacheDir);
    const level = this.opts.gzipLevel ?? 1;
    if (!Number.isInteger(level) || level < 1 || level > 9) throw new UserError(`gzip level ${level} is not 1..9`);
    const store = new LayerStore(cache, req.cacheDir, level);
    await store.init();
    const limit = createLimiter(Math.max(1, Math.floor(req.concurrency ?? this.opts.concurrency ?? DEFAULT_CONCURRENCY)));
    const internal = new AbortController();
    const signal = req.signal ? AbortSignal.any([req.signal, internal.signal]) : internal.signal;
    const phases = { pull: new PhaseClock(), save: new PhaseClock() };
    const policyOf = (input: string, ref: ImageRef) => req.pullPolicy?.[input] ?? req.pullPolicy?.[ref.canonical] ?? 'always';
    // Pinned images stay until every image is saved: layers shared between images are pulled once
    // (removing an image as soon as it is saved would delete shared base layers the next pull needs).
    const pins: string[] = [];
    let resolved: Resolved[];
    try {
      const settled = await Promise.allSettled(
        refs.map(({ input, ref }) =>
          limit(() => this.processImage(ref, policyOf(input, ref), req.platform, { cache, store, signal, progress, phases, pins })).catch((e: unknown) => {
            // Once one image failed (or the caller aborted), the others' errors are consequences of the
            // abort (a pull cut off mid-stream reads as a reset connection), never the reported cause.
            if (signal.aborted) throw anotherFailed(e);
            internal.abort(anotherFailed());
            throw e;
          }),
        ),
      );
      const failures = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => s.reason as unknown);
      if (failures.length > 0) {
        if (req.signal?.aborted) throw req.signal.reason ?? new Error('aborted');
        throw failures.find((e) => e instanceof UserError) ?? rootCause(failures, req.signal);
      }
      resolved = settled.map((s) => (s as PromiseFulfilledResult<Resolved>).value);
    } finally {
      for (const tag of pins) await this.removeRef(tag).catch(() => {});
    }
    const formats = new Set(resolved.map((r) => r.format));
    return {
      images: resolved.map((r) =>
        collectedImage({
          ref: r.ref.canonical,
          platform: r.platform,
          indexPlatform: platformExact(req.platform, r.platform),
          manifest: { digest: r.manifest.digest, size: r.manifest.size, mediaType: MT.ociManifest, bytes: r.manifest.bytes },
          config: { digest: r.config.digest, size: r.config.size, mediaType: MT.ociConfig },
          layers: r.layers,
        }, 'docker'),
      ),
      blobReady: () => Promise.resolve(),
      done: Promise.resolve(),
      stop: () => Promise.resolve([]),
      timings: { pull: phases.pull.seconds(), save: phases.save.seconds(), archive: 0, total: (performance.now() - t0) / 1000 },
      saveFormat: formats.size === 1 ? [...formats][0]! : 'mixed',
    };
  }

  private async processImage(
    ref: ImageRef,
    policy: 'always' | 'never',
    want: Platform,
    c: { cache: BlobCache; store: LayerStore; signal: AbortSignal; progress: ProgressSink; phases: { pull: PhaseClock; save: PhaseClock }; pins: string[] },
  ): Promise<Resolved> {
    const item = ref.canonical;
    c.progress.start(item);
    const daemonName = ref.digest ? `${ref.registry}/${ref.repository}@${ref.digest}` : `${ref.registry}/${ref.repository}:${ref.tag ?? 'latest'}`;
    const archTag = formatPlatform(want).replace(/^linux\//, '').replace(/\//g, '-');
    const hash = createHash('sha256').update(item).digest('hex').slice(0, 16);
    const privateTag = this.opts.keepImages
      ? `kubeprepare.local/keep/${hash}:${archTag}`
      : `${this.opts.tempRepository ?? 'kubeprepare.local/tmp'}/${hash}-${process.pid}-${randomBytes(3).toString('hex')}:${archTag}`;

    // Pull (or find) and pin under the private tag, with the user's references put back as they were.
    if (!this.opts.keepImages) c.pins.push(privateTag);
    const pinned = await this.withLock(daemonName, () =>
      c.phases.pull.time(() => (policy === 'never' ? this.pinLocal(item, daemonName, want, privateTag) : this.pullAndPin(ref, daemonName, want, privateTag, c))),
    );
    {
      let saved = await this.fromCache(pinned, c.cache, c.store);
      let format: Resolved['format'] = 'cache';
      if (!saved) {
        const s = await c.phases.save.time(() => this.save(item, privateTag, pinned.Id, c));
        saved = s;
        format = s.format;
      }
      const cfgPlat = configPlatform(item, saved.configBytes);
      if (!platformMatches(want, cfgPlat)) {
        throw new UserError(`${item} in the Docker daemon is ${formatPlatform(cfgPlat)}, not ${formatPlatform(want)} (by its config)`, {
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
      if (lower) c.progress.note(item, lower);
      const bytes = Buffer.from(manifestJson, 'utf8');
      const total = saved.config.size + saved.layers.reduce((s, l) => s + l.size, 0);
      c.progress.done(item, `${fmtBytes(total)}, ${saved.layers.length} layers, ${formatPlatform(cfgPlat)}${format === 'cache' ? ', from cache' : ''}`);
      return {
        ref,
        platform: cfgPlat,
        config: saved.config,
        layers: saved.layers,
        manifest: { digest: sha256Digest(bytes), size: bytes.length, bytes },
        format,
      };
    }
  }

  /** `pull: never`: the image must be in the daemon already, for the wanted platform. */
  private async pinLocal(item: string, daemonName: string, want: Platform, privateTag: string): Promise<InspectInfo> {
    const info = await this.inspect(daemonName);
    if (!info) {
      throw UserError.runtime(`${item} is not in the Docker daemon at ${this.addr.display} (pull: never)`, `load or build it into that daemon first (docker images ${daemonName}), or set pull: always`);
    }
    this.checkPlatform(item, info, want, 'in the Docker daemon (pull: never)');
    await this.pin(info.Id, privateTag);
    return info;
  }

  private async pullAndPin(
    ref: ImageRef,
    daemonName: string,
    want: Platform,
    privateTag: string,
    c: { signal: AbortSignal; progress: ProgressSink },
  ): Promise<InspectInfo> {
    const item = ref.canonical;
    const prev = await this.inspect(daemonName);
    if (ref.digest && prev) {
      // A digest reference cannot be re-pointed through the API, so never let a pull move it.
      if (platformMatches(want, { os: prev.Os ?? '', architecture: prev.Architecture ?? '', variant: prev.Variant || undefined })) {
        await this.pin(prev.Id, privateTag);
        return prev;
      }
      throw UserError.runtime(
        `${item} is in the Docker daemon as ${describe(prev)}; pulling it for ${formatPlatform(want)} would re-point the daemon's ${daemonName}, which Docker cannot undo`,
        `remove it first (docker rmi ${daemonName}) or use --engine registry`,
      );
    }
    const prevDigests = await this.allRepoDigests();
    let pulled: InspectInfo | undefined;
    try {
      // containerd's order for the bundle's platform (arm/v7, then v6, then v5; amd64/arm64 alone). Each
      // is asked for by itself and taken only when the daemon gave exactly it: dockerd 20.10 answers an
      // arm request without an exact match with the first arm entry of any variant (v8 and v5 included),
      // dockerd 25+ with platforms.Only's best (which for arm64/amd64 may be arm or 386: refused below).
      const order = acceptedPlatforms(want);
      for (let i = 0; i < order.length; i++) {
        const last = i + 1 === order.length;
        try {
          await this.pull(ref, order[i]!, c.signal, (n) => c.progress.bytes(item, n));
        } catch (e) {
          if (!last && e instanceof UserError && NO_PLATFORM.test(e.message)) continue;
          throw e;
        }
        pulled = await this.inspect(daemonName);
        if (!pulled) throw UserError.runtime(`pulling ${item}: the daemon reported success but has no image ${daemonName}`);
        if (last || platformOk(pulled, order[i]!)) break;
      }
      if (!pulled) throw UserError.runtime(`pulling ${item}: the daemon has no image ${daemonName}`);
      this.checkPlatform(item, pulled, want, `pulled by the Docker daemon at ${this.addr.display}`);
      await this.pin(pulled.Id, privateTag);
      return pulled;
    } finally {
      await this.restore(item, daemonName, ref, prev, prevDigests, pulled);
    }
  }

  /** Puts the user's tag and digest references back as they were before the pull. */
  private async restore(item: string, daemonName: string, ref: ImageRef, prev: InspectInfo | undefined, prevDigests: Set<string>, pulled: InspectInfo | undefined): Promise<void> {
    const problems: string[] = [];
    try {
      const now = await this.inspect(daemonName);
      if (!ref.digest) {
        if (prev && now?.Id !== prev.Id) await this.tag(prev.Id, daemonName);
        else if (!prev && now) await this.removeRef(daemonName);
      } else if (!prev && now) {
        await this.removeRef(daemonName);
      }
    } catch (e) {
      problems.push(`${daemonName}: ${(e as Error).message}`);
    }
    for (const d of pulled?.RepoDigests ?? []) {
      if (prevDigests.has(d)) continue;
      try {
        await this.removeRef(d);
      } catch (e) {
        problems.push(`${d}: ${(e as Error).message}`);
      }
    }
    if (problems.length) {
      throw UserError.runtime(`could not put the Docker daemon's references for ${item} back as they were: ${problems.join('; ')}`, 'check `docker images` and re-tag by hand');
    }
  }

  private async pull(ref: ImageRef, want: Platform, signal: AbortSignal, onBytes: (n: number) => void): Promise<void> {
    const item = ref.canonical;
    const cred = await this.credentials.get(ref.registry, ref.registry);
    const serveraddress = ref.registry === 'docker.io' ? 'https://index.docker.io/v1/' : ref.registry;
    const authconfig: Record<string, string> | undefined = cred
      ? {
          serveraddress,
          ...(cred.username !== undefined ? { username: cred.username, password: cred.password ?? '' } : {}),
          ...(cred.identityToken ? { identitytoken: cred.identityToken } : {}),
          ...(cred.registryToken ? { registrytoken: cred.registryToken } : {}),
        }
      : undefined;
    const opts = {
      fromImage: `${ref.registry}/${ref.repository}`,
      tag: ref.digest ?? ref.tag ?? 'latest',
      platform: formatPlatform(want),
      abortSignal: signal,
    };
    let stream: NodeJS.ReadableStream;
    try {
      stream = (await (authconfig ? this.docker.createImage(authconfig as Docker.AuthConfig, opts) : this.docker.createImage(opts))) as NodeJS.ReadableStream;
    } catch (e) {
      throw this.apiError(e, `pulling ${item} for ${formatPlatform(want)}`);
    }
    try {
      await followPull(stream as AsyncIterable<Buffer>, `${item} for ${formatPlatform(want)}`, onBytes);
    } catch (e) {
      (stream as unknown as { destroy?: () => void }).destroy?.();
      if (e instanceof UserError) throw e;
      throw this.apiError(e, `pulling ${item} for ${formatPlatform(want)}`);
    }
  }

  private async save(item: string, name: string, imageId: string, c: { store: LayerStore; cache: BlobCache; signal: AbortSignal; progress: ProgressSink }) {
    let stream: NodeJS.ReadableStream;
    try {
      stream = (await this.docker.getImage(name).get()) as NodeJS.ReadableStream;
    } catch (e) {
      throw this.apiError(e, `exporting ${item} (docker save)`);
    }
    const onAbort = () => (stream as unknown as { destroy: (e?: Error) => void }).destroy(new Error('aborted'));
    c.signal.addEventListener('abort', onAbort, { once: true });
    try {
      const saved = await readDockerSave(stream as AsyncIterable<Buffer>, { image: item, imageId, store: c.store, signal: c.signal });
      await c.cache.putBuffer({ digest: saved.config.digest, size: saved.config.size }, saved.config.bytes, item, 'config');
      return { config: { digest: saved.config.digest, size: saved.config.size }, configBytes: saved.config.bytes, layers: saved.layers, format: saved.format };
    } catch (e) {
      (stream as unknown as { destroy: () => void }).destroy();
      if (e instanceof UserError || c.signal.aborted) throw e;
      throw this.apiError(e, `exporting ${item} (docker save)`);
    } finally {
      c.signal.removeEventListener('abort', onAbort);
    }
  }

  /** An image whose config and every layer are already in the cache needs no `docker save`. */
  private async fromCache(info: InspectInfo, cache: BlobCache, store: LayerStore) {
    const diffIds = info.RootFS?.Layers;
    const id = info.Id;
    if (!diffIds || !isDigest(id)) return undefined;
    let configBytes: Buffer;
    try {
      configBytes = await readFile(cache.path(id));
    } catch {
      return undefined;
    }
    if (sha256Digest(configBytes) !== id) return undefined;
    const layers: StoredLayer[] = [];
    for (const d of diffIds) {
      const l = await store.lookup(d);
      if (!l) return undefined;
      layers.push(l);
    }
    return { config: { digest: id, size: configBytes.length }, configBytes, layers };
  }

  /** The image in the daemon is one a `want` bundle takes (exact, or a lower arm variant). */
  private checkPlatform(item: string, info: InspectInfo, want: Platform, where: string): void {
    if (!platformMatches(want, { os: info.Os ?? '', architecture: info.Architecture ?? '', variant: info.Variant || undefined })) {
      throw new UserError(`${item} ${where} is ${describe(info)}, not ${formatPlatform(want)}`, {
        kind: 'runtime',
        hint: `the image has no ${formatPlatform(want)} variant (or the daemon picked another one); nothing was saved. Pick an architecture the image provides`,
      });
    }
  }

  /**
   * Tags the image under the engine's private name. A kept tag that pointed at an older image (the
   * upstream tag moved) leaves that image untagged: it is removed unless something else still uses it.
   */
  private async pin(id: string, privateTag: string): Promise<void> {
    const old = this.opts.keepImages ? await this.inspect(privateTag) : undefined;
    await this.tag(id, privateTag);
    if (old && old.Id !== id) {
      try {
        await this.docker.getImage(old.Id).remove();
      } catch {
        // still tagged by the user or used by a container: left alone
      }
    }
  }

  private async inspect(name: string): Promise<InspectInfo | undefined> {
    try {
      return (await this.docker.getImage(name).inspect()) as unknown as InspectInfo;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw this.apiError(e, `inspecting ${name}`);
    }
  }

  private async allRepoDigests(): Promise<Set<string>> {
    try {
      const list = await this.docker.listImages({ all: false, digests: true } as Docker.ListImagesOptions);
      return new Set(list.flatMap((i) => i.RepoDigests ?? []));
    } catch (e) {
      throw this.apiError(e, 'listing images');
    }
  }

  private async tag(id: string, name: string): Promise<void> {
    const { repo, tag } = splitName(name);
    try {
      await this.docker.getImage(id).tag({ repo, tag });
    } catch (e) {
      throw this.apiError(e, `tagging ${id} as ${name}`);
    }
  }

  /** Removes one reference (tag or digest reference); the image goes only when nothing else references it. */
  private async removeRef(name: string): Promise<void> {
    try {
      await this.docker.getImage(name).remove();
    } catch (e) {
      const code = (e as { statusCode?: number }).statusCode;
      if (code === 404) return;
      throw this.apiError(e, `removing ${name}`);
    }
  }

  private withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    this.locks.set(key, tail);
    void tail.then(() => {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    });
    return run;
  }

  private apiError(e: unknown, what: string): Error {
    if (e instanceof UserError) return e;
    const err = e as NodeJS.ErrnoException & { statusCode?: number; json?: { message?: string } | null; reason?: string };
    if (err?.name === 'AbortError') return err;
    // The daemon answered when the engine connected: a socket that is gone, refused or forbidden now means
    // the daemon went away; a connection it reset or closed mid-request (Docker 20.10 does this to a pull
    // that fails, e.g. a missing tag) is that request failing, named as such.
    if (err?.code && ['ENOENT', 'ECONNREFUSED', 'EACCES', 'ETIMEDOUT', 'EHOSTUNREACH'].includes(err.code)) return noDaemon(this.addr, e);
    if (err?.code === 'ECONNRESET' || err?.code === 'EPIPE') {
      return UserError.runtime(`${what} failed: the Docker daemon closed the connection (${err.code})`, 'see the Docker daemon log for details (journalctl -u docker)', e);
    }
    const fromJson = err?.json && typeof err.json === 'object' ? err.json.message : typeof err?.json === 'string' ? err.json : undefined;
    // docker-modem's own text is "(HTTP code 404) unexpected - <daemon message>"; keep the daemon's part.
    const msg = String(fromJson ?? err?.message ?? String(e)).replace(/^\(HTTP code \d+\) [\w ]+ - /, '').trim();
    return UserError.runtime(`${what} failed: ${msg}${err?.statusCode ? ` (HTTP ${err.statusCode})` : ''}`, 'see the Docker daemon log for details', e);
  }
}

/** The image in the daemon is `want` itself (no lower variant). */
function platformOk(info: InspectInfo, want: Platform): boolean {
  return platformExact(want, { os: info.Os ?? '', architecture: info.Architecture ?? '', variant: info.Variant || undefined });
}

function describe(info: InspectInfo): string {
  return `${formatPlatform({ os: info.Os ?? '?', architecture: info.Architecture ?? '?', variant: info.Variant || undefined })} (image ${info.Id})`;
}

/** `host:5000/a/b:tag` → repo `host:5000/a/b`, tag `tag`. */
function splitName(name: string): { repo: string; tag: string } {
  const slash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  if (colon > slash) return { repo: name.slice(0, colon), tag: name.slice(colon + 1) };
  return { repo: name, tag: 'latest' };
}

/** Wall-clock time during which at least one task of a phase ran. */
class PhaseClock {
  private active = 0;
  private since = 0;
  private total = 0;
  async time<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active++ === 0) this.since = performance.now();
    try {
      return await fn();
    } finally {
      if (--this.active === 0) this.total += performance.now() - this.since;
    }
  }
  seconds(): number {
    return (this.total + (this.active > 0 ? performance.now() - this.since : 0)) / 1000;
  }
}
