import { formatPlatform, platformMatches, type Platform } from '../platform.js';
import { checkEntrypointIndexed, type ImageConfigLike } from '../engines/entrypoint.js';
import type { BundleInventory } from './inventory.js';
import type { ScannedImagesArchive } from './scan.js';
import type { AddProblem, AnalysedImage, ImagesFacts } from './check.js';

/**
 * The images part of `verify`/`inspect` (see check.ts): the bundle's `images/images.tar` as an OCI
 * layout with a docker `manifest.json` — every image reachable from index.json, its blobs present with
 * the sizes and digests their descriptors give, its platform (config and entrypoint binary) the
 * bundle's — and bundle.json's list of images against it.
 */

interface Descriptor {
  mediaType?: string;
  digest?: string;
  size?: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

type PlatformLike = { os?: string; architecture?: string; variant?: string };

const short = (d: string) => d.replace(/^sha256:/, '').slice(0, 12);

function parseJson<T>(b: Buffer | undefined): T | undefined {
  if (!b) return undefined;
  try {
    return JSON.parse(b.toString('utf8')) as T;
  } catch {
    return undefined;
  }
}

/** What the checks of one images archive share: where problems go and which images use each blob. */
class ImagesCheck {
  readonly at: string;
  /** Which images use each blob (to name them when a blob is bad). */
  readonly users = new Map<string, Set<string>>();

  constructor(
    readonly archive: ScannedImagesArchive,
    readonly want: Platform | undefined,
    readonly add: AddProblem,
  ) {
    this.at = archive.path;
  }

  use(digest: string, ref: string): void {
    let s = this.users.get(digest);
    if (!s) this.users.set(digest, (s = new Set()));
    s.add(ref);
  }

  /** The blob a descriptor names (its JSON, parsed by the scan, when it had any), or null when it is not there. */
  blob(d: string | undefined, what: string, ref: string, size?: number): Buffer | undefined | null {
    if (!d || !/^sha256:[a-f0-9]{64}$/.test(d)) {
      this.add('corrupt', ref, `image ${ref}: ${what} has no valid sha256 digest (${String(d)})`);
      return null;
    }
    this.use(d, ref);
    const b = this.archive.blobs.get(d);
    if (!b) {
      this.add('blob', d, `missing blob: ${what} ${d} of image ${ref} is not in ${this.at}`);
      return null;
    }
    if (size !== undefined && b.size !== size) this.add('blob', d, `blob ${d} (${what} of ${ref}) has ${b.size} bytes, its descriptor says ${size}`);
    return b.json;
  }

  /** A platform problem when `p` is not what the bundle is for; true when there was one. */
  platform(ref: string, p: PlatformLike, source: string): boolean {
    if (!this.want || platformMatches(this.want, p)) return false;
    this.add('platform', ref, `platform: image ${ref} is ${formatPlatform({ os: p.os ?? '?', architecture: p.architecture ?? '?', variant: p.variant })} (${source}), the bundle is for ${formatPlatform(this.want)}`);
    return true;
  }
}

export function analyseImages(archive: ScannedImagesArchive, want: Platform | undefined, add: AddProblem): ImagesFacts {
  const c = new ImagesCheck(archive, want, add);
  const at = archive.path;
  if (!archive.read.complete) add(/^truncated/.test(archive.read.problem ?? '') ? 'truncated' : 'corrupt', at, `${at}: ${archive.read.problem ?? 'incomplete tar'}`);
  for (const o of archive.other) add('extra', `${at}:${o}`, `extra: ${o} inside ${at} is neither a blob nor an OCI layout document`);

  const index = parseJson<{ manifests?: Descriptor[] }>(archive.docs.get('index.json'));
  if (!archive.docs.has('oci-layout')) add('layout', `${at}:oci-layout`, `missing: oci-layout in ${at} (ctr images import needs an OCI layout)`);
  if (!archive.docs.has('index.json')) add('layout', `${at}:index.json`, `missing: index.json in ${at} (no image is reachable)`);
  else if (!index || !Array.isArray(index.manifests)) add('corrupt', `${at}:index.json`, `${at}: index.json is not a valid OCI index`);

  const images = (index?.manifests ?? []).map((desc) => analyseImage(c, desc));
  const totalBlobBytes = images.reduce((sum, img) => sum + img.size, 0);
  dockerManifestProblems(c);
  const uniqueBlobBytes = blobProblems(c);
  return { path: at, images, blobCount: archive.blobs.size, uniqueBlobBytes, totalBlobBytes };
}

/** One image of index.json: its manifest, config and layers, and its platform. */
function analyseImage(c: ImagesCheck, desc: Descriptor): AnalysedImage {
  const ref = desc.annotations?.['io.containerd.image.name'] ?? desc.annotations?.['org.opencontainers.image.ref.name'] ?? desc.digest ?? '?';
  const manifestDigest = desc.digest ?? '';
  const indexPlatform = desc.platform ? formatPlatform({ os: desc.platform.os ?? '', ...desc.platform } as { os: string; architecture: string; variant?: string }) : '';
  const img: AnalysedImage = { ref, manifestDigest, configDigest: undefined, platform: indexPlatform, size: desc.size ?? 0, layers: 0 };
  const mbytes = c.blob(desc.digest, 'manifest', ref, desc.size);
  if (mbytes === null) {
    if (desc.platform) c.platform(ref, desc.platform, 'index.json');
    return img;
  }
  const manifest = parseJson<{ config?: Descriptor; layers?: Descriptor[]; manifests?: unknown }>(mbytes);
  if (!manifest || !manifest.config) {
    c.add('corrupt', ref, `image ${ref}: manifest ${manifestDigest} is not an image manifest${manifest?.manifests ? ' (it is an index; the bundle holds one platform)' : ''}`);
    return img;
  }
  img.configDigest = manifest.config.digest;
  const cbytes = c.blob(manifest.config.digest, 'config', ref, manifest.config.size);
  img.size += manifest.config.size ?? 0;
  for (const l of manifest.layers ?? []) {
    c.blob(l.digest, 'layer', ref, l.size);
    img.size += l.size ?? 0;
  }
  img.layers = manifest.layers?.length ?? 0;
  if (cbytes !== null) checkConfig(c, img, desc, manifest as { config: Descriptor; layers?: Descriptor[] }, cbytes);
  else if (desc.platform) c.platform(ref, desc.platform, 'index.json');
  return img;
}

/** The image config: its platform (then index.json's), and the entrypoint binary inside the layers. */
function checkConfig(c: ImagesCheck, img: AnalysedImage, desc: Descriptor, manifest: { config: Descriptor; layers?: Descriptor[] }, cbytes: Buffer | undefined): void {
  const { ref } = img;
  const config = parseJson<{ architecture?: string; os?: string; variant?: string }>(cbytes);
  if (!config?.architecture) {
    c.add('corrupt', ref, `image ${ref}: config ${manifest.config.digest} has no architecture`);
    return;
  }
  img.platform = formatPlatform({ os: config.os ?? '', architecture: config.architecture, variant: config.variant });
  const bad = c.platform(ref, config, `config ${short(manifest.config.digest ?? '')}`);
  if (!bad && desc.platform) c.platform(ref, desc.platform, 'index.json');
  // What is inside: the entrypoint binary against the image's own platform (layers indexed by the scan).
  const layerIx = (manifest.layers ?? []).map((l) => (l.digest ? c.archive.blobs.get(l.digest)?.layer : undefined));
  if (layerIx.some(Boolean)) {
    const f = checkEntrypointIndexed(config as ImageConfigLike, config.architecture, layerIx);
    for (const p of f.problems) c.add('platform', ref, `platform: image ${ref} (${img.platform}): ${p}`);
  }
}

/** docker load's manifest.json: present, and every config and layer it names a blob of the layout. */
function dockerManifestProblems(c: ImagesCheck): void {
  const { archive, at, add } = c;
  const dockerManifest = parseJson<{ Config?: string; RepoTags?: string[]; Layers?: string[] }[]>(archive.docs.get('manifest.json'));
  if (!archive.docs.has('manifest.json')) return add('layout', `${at}:manifest.json`, `missing: manifest.json in ${at} (docker load needs it)`);
  if (!Array.isArray(dockerManifest)) return add('corrupt', `${at}:manifest.json`, `${at}: manifest.json is not a docker-archive manifest`);
  for (const e of dockerManifest) {
    const name = e.RepoTags?.[0] ?? e.Config ?? '?';
    for (const p of [e.Config, ...(e.Layers ?? [])]) {
      const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(p ?? '');
      if (!m) {
        add('corrupt', name, `manifest.json entry ${name} names ${String(p)}, not a blob of the layout`);
        continue;
      }
      const d = `sha256:${m[1]}`;
      c.use(d, name);
      if (!archive.blobs.has(d)) add('blob', d, `missing blob: ${p} (manifest.json, ${name}) is not in ${at}`);
    }
  }
}

/** Every blob against its digest, and used by some image. Returns the bytes of the distinct blobs. */
function blobProblems(c: ImagesCheck): number {
  const { archive, at, add } = c;
  let uniqueBlobBytes = 0;
  for (const b of [...archive.blobs.values()].sort((x, y) => (x.digest < y.digest ? -1 : 1))) {
    uniqueBlobBytes += b.size;
    const who = [...(c.users.get(b.digest) ?? [])].sort();
    if (b.actual === undefined) {
      if (!archive.read.complete) add('truncated', b.digest, `incomplete: blob ${b.digest} in ${at} is cut short`);
      continue;
    }
    if (b.actual !== b.digest) {
      add('blob', b.digest, `corrupted blob: ${at} blobs/sha256/${b.digest.slice(7)} hashes to ${b.actual}${who.length ? ` (used by ${who.join(', ')})` : ''}`);
    }
    if (who.length === 0) add('extra', b.digest, `extra: blob ${b.digest} in ${at} is not used by any image`);
  }
  return uniqueBlobBytes;
}

/** bundle.json's `images` (list, digests, byte counts) against what the archive holds. */
export function imageInventoryProblems(inv: BundleInventory['images'], facts: ImagesFacts, archive: ScannedImagesArchive, add: AddProblem): void {
  const at = facts.path;
  const byDigest = new Map(facts.images.map((i) => [i.manifestDigest, i]));
  for (const li of inv.list) {
    const got = byDigest.get(li.manifestDigest);
    if (!got) {
      add('missing', li.ref, `missing image: ${li.ref} (manifest ${li.manifestDigest}, listed in bundle.json) is not in ${at}`);
      continue;
    }
    if (got.configDigest && li.configDigest !== got.configDigest) add('inventory', li.ref, `image ${li.ref}: bundle.json says config ${li.configDigest}, the archive has ${got.configDigest}`);
    if (li.platform && got.platform && li.platform !== got.platform) add('inventory', li.ref, `image ${li.ref}: bundle.json says ${li.platform}, its config says ${got.platform}`);
  }
  const listed = new Set(inv.list.map((l) => l.manifestDigest));
  for (const i of facts.images) if (!listed.has(i.manifestDigest)) add('extra', i.ref, `extra image: ${i.ref} (${i.manifestDigest}) is in ${at} but not in bundle.json`);
  if (archive.read.complete && facts.uniqueBlobBytes !== inv.uniqueBlobBytes) {
    add('inventory', at, `bundle.json says ${inv.uniqueBlobBytes} bytes of distinct blobs, ${at} holds ${facts.uniqueBlobBytes}`);
  }
  if (archive.read.complete && facts.totalBlobBytes !== inv.totalBlobBytes) {
    add('inventory', at, `bundle.json says ${inv.totalBlobBytes} bytes of image blobs before sharing, ${at}'s images add up to ${facts.totalBlobBytes}`);
  }
}
