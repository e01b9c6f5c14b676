import type Docker from 'dockerode';
import { UserError } from '../../errors.js';
import type { ImageRef } from '../../manifest/image-ref.js';
import type { CredentialStore } from '../../oci/credentials.js';
import { acceptedPlatforms, formatPlatform, platformExact, platformMatches, type Platform } from '../../oci/platform.js';
import type { ProgressSink } from '../../progress/sink.js';
import { describe, infoPlatform, type DaemonImages, type InspectInfo } from './daemon.js';
import { followPull } from './pull-stream.js';

/** dockerd's words for "the image has no manifest for that platform" (moby distribution/pull_v2.go). */
const NO_PLATFORM = /no matching manifest|does not match the specified platform/i;

/**
 * Gets one image into the daemon for the wanted platform and pins it under the engine's private tag:
 * from the daemon as it is (`pull: never`), or pulled, with the user's own tag and digest references
 * put back as they were before the pull.
 */
export class ImageAcquirer {
  constructor(
    private readonly daemon: DaemonImages,
    private readonly credentials: CredentialStore,
  ) {}

  /** `pull: never`: the image must be in the daemon already, for the wanted platform. */
  async pinLocal(item: string, daemonName: string, want: Platform, privateTag: string): Promise<InspectInfo> {
    const info = await this.daemon.inspect(daemonName);
    if (!info) {
      throw UserError.runtime('not-found', `${item} is not in the Docker daemon at ${this.daemon.addr.display} (pull: never)`, `load or build it into that daemon first (docker images ${daemonName}), or set pull: always`);
    }
    checkPlatform(item, info, want, 'in the Docker daemon (pull: never)');
    await this.daemon.pin(info.Id, privateTag);
    return info;
  }

  async pullAndPin(ref: ImageRef, daemonName: string, want: Platform, privateTag: string, c: { signal: AbortSignal; progress: ProgressSink }): Promise<InspectInfo> {
    const item = ref.canonical;
    const prev = await this.daemon.inspect(daemonName);
    if (ref.digest && prev) {
      // A digest reference cannot be re-pointed through the API, so never let a pull move it.
      if (platformMatches(want, infoPlatform(prev))) {
        await this.daemon.pin(prev.Id, privateTag);
        return prev;
      }
      throw UserError.runtime(
        'platform',
        `${item} is in the Docker daemon as ${describe(prev)}; pulling it for ${formatPlatform(want)} would re-point the daemon's ${daemonName}, which Docker cannot undo`,
        `remove it first (docker rmi ${daemonName}) or use --engine registry`,
      );
    }
    const prevDigests = await this.daemon.allRepoDigests();
    const pulled: { info?: InspectInfo | undefined } = {};
    try {
      pulled.info = await this.pullBest(ref, daemonName, want, c, pulled);
      checkPlatform(item, pulled.info, want, `pulled by the Docker daemon at ${this.daemon.addr.display}`);
      await this.daemon.pin(pulled.info.Id, privateTag);
      return pulled.info;
    } finally {
      await this.restore(item, daemonName, ref, prev, prevDigests, pulled.info);
    }
  }

  /**
   * containerd's order for the bundle's platform (arm/v7, then v6, then v5; amd64/arm64 alone). Each is
   * asked for by itself and taken only when the daemon gave exactly it: dockerd 20.10 answers an arm
   * request without an exact match with the first arm entry of any variant (v8 and v5 included), dockerd
   * 25+ with platforms.Only's best (which for arm64/amd64 may be arm or 386: refused by the caller).
   * `pulled.info` is the last image pulled, also when a later try fails (its references are put back).
   */
  private async pullBest(ref: ImageRef, daemonName: string, want: Platform, c: { signal: AbortSignal; progress: ProgressSink }, pulled: { info?: InspectInfo | undefined }): Promise<InspectInfo> {
    const item = ref.canonical;
    const order = acceptedPlatforms(want);
    for (let i = 0; i < order.length; i++) {
      const last = i + 1 === order.length;
      try {
        await this.pull(ref, order[i]!, c.signal, (n) => c.progress.bytes(item, n));
      } catch (e) {
        if (!last && e instanceof UserError && NO_PLATFORM.test(e.message)) continue;
        throw e;
      }
      pulled.info = await this.daemon.inspect(daemonName);
      if (!pulled.info) throw UserError.runtime('docker', `pulling ${item}: the daemon reported success but has no image ${daemonName}`);
      if (last || platformExact(order[i]!, infoPlatform(pulled.info))) break;
    }
    if (!pulled.info) throw UserError.runtime('docker', `pulling ${item}: the daemon has no image ${daemonName}`);
    return pulled.info;
  }

  /** Puts the user's tag and digest references back as they were before the pull. */
  private async restore(item: string, daemonName: string, ref: ImageRef, prev: InspectInfo | undefined, prevDigests: Set<string>, pulled: InspectInfo | undefined): Promise<void> {
    const problems: string[] = [];
    try {
      const now = await this.daemon.inspect(daemonName);
      if (!ref.digest) {
        if (prev && now?.Id !== prev.Id) await this.daemon.tag(prev.Id, daemonName);
        else if (!prev && now) await this.daemon.removeRef(daemonName);
      } else if (!prev && now) {
        await this.daemon.removeRef(daemonName);
      }
    } catch (e) {
      problems.push(`${daemonName}: ${(e as Error).message}`);
    }
    for (const d of pulled?.RepoDigests ?? []) {
      if (prevDigests.has(d)) continue;
      try {
        await this.daemon.removeRef(d);
      } catch (e) {
        problems.push(`${d}: ${(e as Error).message}`);
      }
    }
    if (problems.length) {
      throw UserError.runtime('docker', `could not put the Docker daemon's references for ${item} back as they were: ${problems.join('; ')}`, 'check `docker images` and re-tag by hand');
    }
  }

  private async pull(ref: ImageRef, want: Platform, signal: AbortSignal, onBytes: (n: number) => void): Promise<void> {
    const item = ref.canonical;
    const authconfig = await this.authConfig(ref);
    const opts = {
      fromImage: `${ref.registry}/${ref.repository}`,
      tag: ref.digest ?? ref.tag ?? 'latest',
      platform: formatPlatform(want),
      abortSignal: signal,
    };
    let stream: NodeJS.ReadableStream;
    try {
      stream = (await (authconfig ? this.daemon.docker.createImage(authconfig as Docker.AuthConfig, opts) : this.daemon.docker.createImage(opts))) as NodeJS.ReadableStream;
    } catch (e) {
      throw this.daemon.apiError(e, `pulling ${item} for ${formatPlatform(want)}`);
    }
    try {
      await followPull(stream as AsyncIterable<Buffer>, `${item} for ${formatPlatform(want)}`, onBytes);
    } catch (e) {
      (stream as unknown as { destroy?: () => void }).destroy?.();
      if (e instanceof UserError) throw e;
      throw this.daemon.apiError(e, `pulling ${item} for ${formatPlatform(want)}`);
    }
  }

  /** The credentials passed to the daemon with the pull (Docker config / credential helpers), if any. */
  private async authConfig(ref: ImageRef): Promise<Record<string, string> | undefined> {
    const cred = await this.credentials.get(ref.registry, ref.registry);
    if (!cred) return undefined;
    return {
      serveraddress: ref.registry === 'docker.io' ? 'https://index.docker.io/v1/' : ref.registry,
      ...(cred.username !== undefined ? { username: cred.username, password: cred.password ?? '' } : {}),
      ...(cred.identityToken ? { identitytoken: cred.identityToken } : {}),
      ...(cred.registryToken ? { registrytoken: cred.registryToken } : {}),
    };
  }
}

/** The image in the daemon is one a `want` bundle takes (exact, or a lower arm variant). */
function checkPlatform(item: string, info: InspectInfo, want: Platform, where: string): void {
  if (!platformMatches(want, infoPlatform(info))) {
    throw new UserError(`${item} ${where} is ${describe(info)}, not ${formatPlatform(want)}`, {
      code: 'platform',
      kind: 'runtime',
      hint: `the image has no ${formatPlatform(want)} variant (or the daemon picked another one); nothing was saved. Pick an architecture the image provides`,
    });
  }
}
