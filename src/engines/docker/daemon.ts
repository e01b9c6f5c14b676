import type Docker from 'dockerode';
import { UserError, fsError, isAbort, isMachineFailure } from '../../errors.js';
import { debug } from '../../util/debug.js';
import { formatPlatform, type PlatformLike } from '../../oci/platform.js';
import { noDaemon, type DaemonAddress } from './connect.js';

/** What `docker image inspect` tells the engine. */
export interface InspectInfo {
  Id: string;
  Os?: string;
  Architecture?: string;
  Variant?: string;
  RepoTags?: string[] | null;
  RepoDigests?: string[] | null;
  RootFS?: { Layers?: string[] };
}

/**
 * The daemon's image API as the engine uses it (inspect, list, tag, remove, one lock per name), each
 * failure turned into a UserError naming the operation, or into "no daemon" when the daemon went away.
 */
export class DaemonImages {
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    readonly docker: Docker,
    readonly addr: DaemonAddress,
    private readonly keepImages: boolean,
  ) {}

  async inspect(name: string): Promise<InspectInfo | undefined> {
    try {
      return (await this.docker.getImage(name).inspect()) as unknown as InspectInfo;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw this.apiError(e, `inspecting ${name}`);
    }
  }

  async allRepoDigests(): Promise<Set<string>> {
    try {
      const list = await this.docker.listImages({ all: false, digests: true } as Docker.ListImagesOptions);
      return new Set(list.flatMap((i) => i.RepoDigests ?? []));
    } catch (e) {
      throw this.apiError(e, 'listing images');
    }
  }

  async tag(id: string, name: string): Promise<void> {
    const { repo, tag } = splitName(name);
    debug('docker', `tag ${id} as ${name}`);
    try {
      await this.docker.getImage(id).tag({ repo, tag });
    } catch (e) {
      throw this.apiError(e, `tagging ${id} as ${name}`);
    }
  }

  /** Removes one reference (tag or digest reference); the image goes only when nothing else references it. */
  async removeRef(name: string): Promise<void> {
    debug('docker', `remove reference ${name}`);
    try {
      await this.docker.getImage(name).remove();
    } catch (e) {
      const code = (e as { statusCode?: number }).statusCode;
      if (code === 404) return;
      throw this.apiError(e, `removing ${name}`);
    }
  }

  /**
   * Tags the image under the engine's private name. A kept tag that pointed at an older image (the
   * upstream tag moved) leaves that image untagged: it is removed unless something else still uses it.
   */
  async pin(id: string, privateTag: string): Promise<void> {
    const old = this.keepImages ? await this.inspect(privateTag) : undefined;
    await this.tag(id, privateTag);
    if (old && old.Id !== id) {
      debug('docker', `remove ${old.Id}, no longer ${privateTag}`);
      try {
        await this.docker.getImage(old.Id).remove();
      } catch {
        // still tagged by the user or used by a container: left alone
      }
    }
  }

  /** Runs `fn` after every earlier task for the same `key` (one image name pulled and re-tagged at a time). */
  withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    this.locks.set(key, tail);
    void tail.then(() => {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    });
    return run;
  }

  apiError(e: unknown, what: string): Error {
    if (e instanceof UserError) return e;
    const err = e as NodeJS.ErrnoException & { statusCode?: number; json?: { message?: string } | null; reason?: string };
    if (isAbort(err)) return err;
    if (isMachineFailure(err) && err.syscall !== 'connect') return fsError(err); // the cache's filesystem, not the daemon's socket
    // The daemon answered when the engine connected: a socket that is gone, refused or forbidden now means
    // the daemon went away; a connection it reset or closed mid-request (Docker 20.10 does this to a pull
    // that fails, e.g. a missing tag) is that request failing, named as such.
    if (err?.code && ['ENOENT', 'ECONNREFUSED', 'EACCES', 'ETIMEDOUT', 'EHOSTUNREACH'].includes(err.code)) return noDaemon(this.addr, e);
    if (err?.code === 'ECONNRESET' || err?.code === 'EPIPE') {
      return UserError.runtime('docker', `${what} failed: the Docker daemon closed the connection (${err.code})`, 'see the Docker daemon log for details (journalctl -u docker)', e);
    }
    const fromJson = err?.json && typeof err.json === 'object' ? err.json.message : typeof err?.json === 'string' ? err.json : undefined;
    // docker-modem's own text is "(HTTP code 404) unexpected - <daemon message>"; keep the daemon's part.
    const msg = String(fromJson ?? err?.message ?? String(e)).replace(/^\(HTTP code \d+\) [\w ]+ - /, '').trim();
    return UserError.runtime('docker', `${what} failed: ${msg}${err?.statusCode ? ` (HTTP ${err.statusCode})` : ''}`, 'see the Docker daemon log for details', e);
  }
}

/** The platform `docker image inspect` reports. */
export function infoPlatform(info: InspectInfo): PlatformLike {
  return { os: info.Os ?? '', architecture: info.Architecture ?? '', variant: info.Variant || undefined };
}

/** `linux/arm/v6 (image sha256:…)`, for messages. */
export function describe(info: InspectInfo): string {
  return `${formatPlatform({ os: info.Os ?? '?', architecture: info.Architecture ?? '?', variant: info.Variant || undefined })} (image ${info.Id})`;
}

/** `host:5000/a/b:tag` → repo `host:5000/a/b`, tag `tag`. */
function splitName(name: string): { repo: string; tag: string } {
  const slash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  if (colon > slash) return { repo: name.slice(0, colon), tag: name.slice(colon + 1) };
  return { repo: name, tag: 'latest' };
}
