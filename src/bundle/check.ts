import { formatPlatform, parseArch, platformMatches, type Platform } from '../platform.js';
import type { UncheckedDescriptor } from '../oci/descriptor.js';
import type { Platform as ImagePlatform, PlatformLike } from '../oci/platform.js';
import { checkEntrypointIndexed, type ImageConfigLike } from '../engines/entrypoint.js';
import type { BundleInventory } from './inventory.js';
import type { BundleScan, ScannedImagesArchive } from './scan.js';

/**
 * Checks a scanned bundle (see scan.ts) and collects EVERY problem: files against SHA256SUMS and
 * bundle.json, image blobs against their digests, every referenced blob present, image platforms against
 * the bundle's, the files the install scripts need, truncation. Also returns what inspect shows.
 */
export type ProblemKind =
  | 'truncated'
  | 'corrupt'
  | 'layout'
  | 'missing'
  | 'modified'
  | 'extra'
  | 'inventory'
  | 'blob'
  | 'platform'
  | 'required';

export interface Problem {
  kind: ProblemKind;
  /** The file (relative to the bundle's top directory), blob digest or image concerned. */
  subject: string;
  message: string;
}

/** Files install.sh / verify.sh need on every side, and on the cloud side. Binaries from bundle.json are added. */
export const REQUIRED_FILES: Record<'common' | 'cloud' | 'edge', string[]> = {
  common: ['install.sh', 'verify.sh', 'SHA256SUMS', 'bundle.json', 'bin/keadm'],
  cloud: ['bin/k3s', 'scripts/k3s-install.sh', 'manifests/metrics-server.yaml', 'manifests/iptables-metrics-setup.sh'],
  edge: [],
};

/** Files listed in SHA256SUMS but not in bundle.json's `files` (written after the inventory). */
export const NOT_IN_INVENTORY = new Set(['bundle.json', 'SHA256SUMS', 'sbom.cdx.json']);

export interface AnalysedImage {
  /** Canonical name from index.json (`io.containerd.image.name`), else the docker RepoTag. */
  ref: string;
  manifestDigest: string;
  configDigest: string | undefined;
  /** From the image config (architecture/variant), else from index.json. */
  platform: string;
  /** Manifest + config + layers, bytes. */
  size: number;
  layers: number;
}

export interface ImagesFacts {
  path: string;
  images: AnalysedImage[];
  blobCount: number;
  /** Sum of the sizes of the distinct blobs in the archive. */
  uniqueBlobBytes: number;
  /** Sum over images of manifest + config + layers (what the archive would hold without sharing). */
  totalBlobBytes: number;
}

export interface BundleAnalysis {
  name: string | undefined;
  side: 'cloud' | 'edge' | undefined;
  /** The platform bundle.json names. */
  bundlePlatform: string | undefined;
  /** The platform checked against (from --arch, else bundle.json). */
  platform: string | undefined;
  inventory: BundleInventory | undefined;
  sums: Map<string, string> | undefined;
  images: ImagesFacts | undefined;
  requiredFiles: string[];
  problems: Problem[];
}

export interface CheckOptions {
  /** Check against this platform instead of bundle.json's `platform`. */
  platform?: Platform;
}

const short = (d: string) => d.replace(/^sha256:/, '').slice(0, 12);

export function analyseBundle(scan: BundleScan, opts: CheckOptions = {}): BundleAnalysis {
  const problems: Problem[] = [];
  const add = (kind: ProblemKind, subject: string, message: string) => problems.push({ kind, subject, message });

  // --- the tar stream itself
  if (!scan.read.complete) {
    const p = scan.read.problem ?? 'incomplete archive';
    add(/^truncated|^empty/.test(p) ? 'truncated' : 'corrupt', scan.file, `${p}${/^truncated/.test(p) ? ' — the tarball was not copied completely' : ''}`);
  }
  if (scan.topDirs.length !== 1) {
    add('layout', scan.file, scan.topDirs.length === 0 ? 'no top directory: a bundle holds one directory with everything in it' : `${scan.topDirs.length} top-level entries (${scan.topDirs.join(', ')}); a bundle has exactly one top directory`);
  }
  for (const s of scan.strays) add('layout', s, `unexpected entry ${s}: a bundle holds only regular files and directories under its top directory`);

  // --- SHA256SUMS
  let sums: Map<string, string> | undefined;
  const sumsText = scan.kept.get('SHA256SUMS');
  if (sumsText) {
    sums = new Map();
    sumsText
      .toString('utf8')
      .split('\n')
      .forEach((line, i) => {
        if (line.trim() === '') return;
        const m = /^([a-f0-9]{64}) [ *](.+)$/.exec(line);
        if (!m?.[1] || !m[2]) return add('corrupt', 'SHA256SUMS', `SHA256SUMS line ${i + 1} is not "<sha256>  <path>": ${line.slice(0, 120)}`);
        const path = m[2].replace(/^\.\//, '');
        if (path.startsWith('/') || path.split('/').includes('..')) return add('corrupt', 'SHA256SUMS', `SHA256SUMS line ${i + 1} names a path outside the bundle: ${path}`);
        sums!.set(path, m[1]);
      });
  }

  // --- bundle.json
  let inventory: BundleInventory | undefined;
  const invText = scan.kept.get('bundle.json');
  if (invText) {
    try {
      const parsed = JSON.parse(invText.toString('utf8')) as BundleInventory;
      if (parsed && typeof parsed === 'object' && Array.isArray(parsed.files)) inventory = parsed;
      else add('inventory', 'bundle.json', 'bundle.json is not a kubeprepare inventory (no files list)');
    } catch (e) {
      add('corrupt', 'bundle.json', `bundle.json is not valid JSON: ${(e as Error).message}`);
    }
  }
  const invFiles = new Map((inventory?.files ?? []).map((f) => [f.path, f]));

  const topName = scan.topDirs.length === 1 ? scan.topDirs[0] : undefined;
  const side: 'cloud' | 'edge' | undefined = inventory?.side ?? (topName?.includes('-cloud-') ? 'cloud' : topName?.includes('-edge-') ? 'edge' : undefined);

  // --- the platform checked against
  let want: Platform | undefined = opts.platform;
  if (inventory?.platform) {
    let invPlatform: Platform | undefined;
    try {
      invPlatform = parseArch(inventory.platform);
    } catch {
      add('inventory', 'bundle.json', `bundle.json names an unknown platform '${inventory.platform}'`);
    }
    if (invPlatform && want && formatPlatform(invPlatform) !== formatPlatform(want)) {
      add('platform', 'bundle.json', `the bundle is for ${formatPlatform(invPlatform)} (bundle.json), but ${formatPlatform(want)} was asked for (--arch)`);
    }
    want ??= invPlatform;
  }

  // --- required files
  const required = new Map<string, string>();
  for (const f of REQUIRED_FILES.common) required.set(f, 'needed by install.sh/verify.sh');
  if (side) for (const f of REQUIRED_FILES[side]) required.set(f, `needed by the ${side} install.sh`);
  for (const b of inventory?.binaries ?? []) if (!required.has(b.path)) required.set(b.path, `binary ${b.name} listed in bundle.json`);
  if (inventory?.images.archive) required.set(inventory.images.archive, 'images archive listed in bundle.json');

  // --- every file, once, with all the reasons it is expected
  const expectedPaths = new Set<string>([...(sums?.keys() ?? []), ...invFiles.keys(), ...required.keys()]);
  for (const path of [...expectedPaths].sort()) {
    const have = scan.files.get(path);
    const listedBy: string[] = [];
    if (sums?.has(path)) listedBy.push('listed in SHA256SUMS');
    if (invFiles.has(path)) listedBy.push('listed in bundle.json');
    const need = required.get(path);
    if (need) listedBy.push(need);
    if (!have) {
      add(need && !sums?.has(path) && !invFiles.has(path) ? 'required' : 'missing', path, `missing: ${path} (${listedBy.join('; ')})`);
      continue;
    }
    if (!have.complete) {
      add('truncated', path, `incomplete: ${path} is cut short (${have.size} bytes expected) by the truncation`);
      continue;
    }
    if (have.sha256 === undefined) continue; // hashing off (inspect)
    const sum = sums?.get(path);
    const inv = invFiles.get(path);
    const claims: string[] = [];
    if (sum && sum !== have.sha256) claims.push(`SHA256SUMS says ${sum}`);
    if (inv && inv.sha256 !== have.sha256) claims.push(`bundle.json says ${inv.sha256}`);
    if (inv && inv.size !== have.size) claims.push(`bundle.json says ${inv.size} bytes, it has ${have.size}`);
    if (claims.length > 0) add('modified', path, `modified: ${path} has sha256 ${have.sha256}; ${claims.join('; ')}`);
    if (sum && inv && sum !== inv.sha256 && sum === have.sha256) add('inventory', path, `${path}: SHA256SUMS and bundle.json disagree (${sum} vs ${inv.sha256})`);
  }
  // files nobody lists
  for (const [path] of [...scan.files].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const notInSums = sums !== undefined && path !== 'SHA256SUMS' && !sums.has(path);
    const notInInv = inventory !== undefined && !NOT_IN_INVENTORY.has(path) && !invFiles.has(path);
    if (notInSums || notInInv) {
      add('extra', path, `extra: ${path} is in the tarball but not ${[notInSums ? 'in SHA256SUMS' : '', notInInv ? 'in bundle.json' : ''].filter(Boolean).join(' nor ')}`);
    }
  }
  unsafePathProblems(scan, add);
  modeProblems(scan, invFiles, add);
  if (sums && !sums.has('bundle.json') && scan.files.has('bundle.json')) {
    // already reported as extra; nothing more
  }
  // bundle.json's own claims about binaries and the images archive
  for (const b of inventory?.binaries ?? []) {
    const have = scan.files.get(b.path);
    const inv = invFiles.get(b.path);
    if (have?.sha256 && b.sha256 !== have.sha256 && inv?.sha256 === have.sha256) {
      add('inventory', b.path, `bundle.json: binary ${b.name} says sha256 ${b.sha256}, ${b.path} has ${have.sha256}`);
    }
  }

  // --- ELF binaries built for another machine
  if (want) {
    for (const f of scan.files.values()) {
      const machine = elfMachine(f.head);
      if (machine && machine !== want.architecture) {
        add('platform', f.path, `platform: ${f.path} is an ELF binary for ${machine}, the bundle is for ${formatPlatform(want)}`);
      }
    }
  }

  // --- images
  let imagesFacts: ImagesFacts | undefined;
  const archivePath = inventory?.images.archive ?? (scan.images.size > 0 ? [...scan.images.keys()][0] : undefined);
  if (archivePath) {
    const archive = scan.images.get(archivePath);
    if (archive && scan.files.get(archivePath)?.complete) {
      imagesFacts = analyseImages(archive, want, add);
      const inv = inventory?.images;
      if (inv) {
        const f = scan.files.get(archivePath);
        if (inv.sha256 && f?.sha256 && inv.sha256 !== f.sha256 && invFiles.get(archivePath)?.sha256 === f.sha256) {
          add('inventory', archivePath, `bundle.json images.sha256 is ${inv.sha256}, ${archivePath} has ${f.sha256}`);
        }
        const byDigest = new Map(imagesFacts.images.map((i) => [i.manifestDigest, i]));
        for (const li of inv.list) {
          const got = byDigest.get(li.manifestDigest);
          if (!got) {
            add('missing', li.ref, `missing image: ${li.ref} (manifest ${li.manifestDigest}, listed in bundle.json) is not in ${archivePath}`);
            continue;
          }
          if (got.configDigest && li.configDigest !== got.configDigest) add('inventory', li.ref, `image ${li.ref}: bundle.json says config ${li.configDigest}, the archive has ${got.configDigest}`);
          if (li.platform && got.platform && li.platform !== got.platform) add('inventory', li.ref, `image ${li.ref}: bundle.json says ${li.platform}, its config says ${got.platform}`);
        }
        const listed = new Set(inv.list.map((l) => l.manifestDigest));
        for (const i of imagesFacts.images) if (!listed.has(i.manifestDigest)) add('extra', i.ref, `extra image: ${i.ref} (${i.manifestDigest}) is in ${archivePath} but not in bundle.json`);
        if (archive.read.complete && imagesFacts.uniqueBlobBytes !== inv.uniqueBlobBytes) {
          add('inventory', archivePath, `bundle.json says ${inv.uniqueBlobBytes} bytes of distinct blobs, ${archivePath} holds ${imagesFacts.uniqueBlobBytes}`);
        }
        if (archive.read.complete && imagesFacts.totalBlobBytes !== inv.totalBlobBytes) {
          add('inventory', archivePath, `bundle.json says ${inv.totalBlobBytes} bytes of image blobs before sharing, ${archivePath}'s images add up to ${imagesFacts.totalBlobBytes}`);
        }
      }
    }
  }

  return {
    name: inventory?.name ?? topName,
    side,
    bundlePlatform: inventory?.platform,
    platform: want ? formatPlatform(want) : undefined,
    inventory,
    sums,
    images: imagesFacts,
    requiredFiles: [...required.keys()].sort(),
    problems,
  };
}

/**
 * Entries whose name leaves the bundle's directory: a `..` component (`<top>/../../etc/x`). Reported as
 * layout problems naming the entry; an absolute name has no top directory and is a stray of scan.ts.
 */
function unsafePathProblems(scan: BundleScan, add: (k: ProblemKind, s: string, m: string) => void): void {
  for (const path of scan.files.keys()) {
    if (path.split('/').includes('..')) add('layout', path, `unsafe entry ${path}: its name leaves the bundle's directory ('..'); a bundle never holds one`);
  }
}

/** Files whose permission bits differ from bundle.json's `mode` (install.sh that is no longer executable…). */
function modeProblems(scan: BundleScan, invFiles: Map<string, { mode: string }>, add: (k: ProblemKind, s: string, m: string) => void): void {
  for (const [path, inv] of invFiles) {
    const have = scan.files.get(path);
    if (!have || !/^0?[0-7]{3,4}$/.test(inv.mode)) continue;
    const want = Number.parseInt(inv.mode, 8);
    const got = have.mode & 0o7777;
    if (got !== want) add('modified', path, `modified: ${path} has mode ${got.toString(8).padStart(4, '0')}; bundle.json says ${inv.mode}`);
  }
}

function parseJson<T>(b: Buffer | undefined): T | undefined {
  if (!b) return undefined;
  try {
    return JSON.parse(b.toString('utf8')) as T;
  } catch {
    return undefined;
  }
}

function analyseImages(archive: ScannedImagesArchive, want: Platform | undefined, add: (k: ProblemKind, s: string, m: string) => void): ImagesFacts {
  const at = archive.path;
  if (!archive.read.complete) add(/^truncated/.test(archive.read.problem ?? '') ? 'truncated' : 'corrupt', at, `${at}: ${archive.read.problem ?? 'incomplete tar'}`);
  for (const o of archive.other) add('extra', `${at}:${o}`, `extra: ${o} inside ${at} is neither a blob nor an OCI layout document`);

  // Which images use each blob (to name them when a blob is bad).
  const users = new Map<string, Set<string>>();
  const use = (digest: string, ref: string) => {
    let s = users.get(digest);
    if (!s) users.set(digest, (s = new Set()));
    s.add(ref);
  };
  const images: AnalysedImage[] = [];
  let totalBlobBytes = 0;

  const index = parseJson<{ manifests?: UncheckedDescriptor[] }>(archive.docs.get('index.json'));
  if (!archive.docs.has('oci-layout')) add('layout', `${at}:oci-layout`, `missing: oci-layout in ${at} (ctr images import needs an OCI layout)`);
  if (!archive.docs.has('index.json')) add('layout', `${at}:index.json`, `missing: index.json in ${at} (no image is reachable)`);
  else if (!index || !Array.isArray(index.manifests)) add('corrupt', `${at}:index.json`, `${at}: index.json is not a valid OCI index`);

  const blobState = (d: string | undefined, what: string, ref: string, size?: number): Buffer | undefined | null => {
    if (!d || !/^sha256:[a-f0-9]{64}$/.test(d)) {
      add('corrupt', ref, `image ${ref}: ${what} has no valid sha256 digest (${String(d)})`);
      return null;
    }
    use(d, ref);
    const b = archive.blobs.get(d);
    if (!b) {
      add('blob', d, `missing blob: ${what} ${d} of image ${ref} is not in ${at}`);
      return null;
    }
    if (size !== undefined && b.size !== size) add('blob', d, `blob ${d} (${what} of ${ref}) has ${b.size} bytes, its descriptor says ${size}`);
    return b.json;
  };

  for (const desc of index?.manifests ?? []) {
    const ref = desc.annotations?.['io.containerd.image.name'] ?? desc.annotations?.['org.opencontainers.image.ref.name'] ?? desc.digest ?? '?';
    const manifestDigest = desc.digest ?? '';
    let size = desc.size ?? 0;
    const mbytes = blobState(desc.digest, 'manifest', ref, desc.size);
    const img: AnalysedImage = { ref, manifestDigest, configDigest: undefined, platform: desc.platform ? formatPlatform({ os: desc.platform.os ?? '', ...desc.platform } as ImagePlatform) : '', size: 0, layers: 0 };
    images.push(img);
    const checkPlatform = (p: PlatformLike, source: string) => {
      if (!want) return;
      if (!platformMatches(want, p)) {
        add('platform', ref, `platform: image ${ref} is ${formatPlatform({ os: p.os ?? '?', architecture: p.architecture ?? '?', variant: p.variant })} (${source}), the bundle is for ${formatPlatform(want)}`);
        return true;
      }
      return false;
    };
    if (mbytes === null) {
      totalBlobBytes += size;
      img.size = size;
      if (desc.platform) checkPlatform(desc.platform, 'index.json');
      continue;
    }
    const manifest = parseJson<{ config?: UncheckedDescriptor; layers?: UncheckedDescriptor[]; manifests?: unknown }>(mbytes);
    if (!manifest || !manifest.config) {
      add('corrupt', ref, `image ${ref}: manifest ${manifestDigest} is not an image manifest${manifest?.manifests ? ' (it is an index; the bundle holds one platform)' : ''}`);
      totalBlobBytes += size;
      img.size = size;
      continue;
    }
    img.configDigest = manifest.config.digest;
    const cbytes = blobState(manifest.config.digest, 'config', ref, manifest.config.size);
    size += manifest.config.size ?? 0;
    for (const l of manifest.layers ?? []) {
      blobState(l.digest, 'layer', ref, l.size);
      size += l.size ?? 0;
    }
    img.layers = manifest.layers?.length ?? 0;
    img.size = size;
    totalBlobBytes += size;
    const config = parseJson<PlatformLike>(cbytes ?? undefined);
    if (cbytes !== null) {
      if (!config?.architecture) add('corrupt', ref, `image ${ref}: config ${manifest.config.digest} has no architecture`);
      else {
        img.platform = formatPlatform({ os: config.os ?? '', architecture: config.architecture, variant: config.variant });
        const bad = checkPlatform(config, `config ${short(manifest.config.digest ?? '')}`);
        if (!bad && desc.platform) checkPlatform(desc.platform, 'index.json');
        // What is inside: the entrypoint binary against the image's own platform (layers indexed by the scan).
        const layerIx = (manifest.layers ?? []).map((l) => (l.digest ? archive.blobs.get(l.digest)?.layer : undefined));
        if (layerIx.some(Boolean)) {
          const f = checkEntrypointIndexed(config as ImageConfigLike, config.architecture, layerIx);
          for (const p of f.problems) add('platform', ref, `platform: image ${ref} (${img.platform}): ${p}`);
        }
      }
    } else if (desc.platform) checkPlatform(desc.platform, 'index.json');
  }

  // docker load's manifest.json
  const dockerManifest = parseJson<{ Config?: string; RepoTags?: string[]; Layers?: string[] }[]>(archive.docs.get('manifest.json'));
  if (!archive.docs.has('manifest.json')) add('layout', `${at}:manifest.json`, `missing: manifest.json in ${at} (docker load needs it)`);
  else if (!Array.isArray(dockerManifest)) add('corrupt', `${at}:manifest.json`, `${at}: manifest.json is not a docker-archive manifest`);
  else {
    for (const e of dockerManifest) {
      const name = e.RepoTags?.[0] ?? e.Config ?? '?';
      for (const p of [e.Config, ...(e.Layers ?? [])]) {
        const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(p ?? '');
        if (!m) {
          add('corrupt', name, `manifest.json entry ${name} names ${String(p)}, not a blob of the layout`);
          continue;
        }
        const d = `sha256:${m[1]}`;
        use(d, name);
        if (!archive.blobs.has(d)) add('blob', d, `missing blob: ${p} (manifest.json, ${name}) is not in ${at}`);
      }
    }
  }

  // every blob against its digest
  let uniqueBlobBytes = 0;
  for (const b of [...archive.blobs.values()].sort((x, y) => (x.digest < y.digest ? -1 : 1))) {
    uniqueBlobBytes += b.size;
    const who = [...(users.get(b.digest) ?? [])].sort();
    if (b.actual === undefined) {
      if (!archive.read.complete) add('truncated', b.digest, `incomplete: blob ${b.digest} in ${at} is cut short`);
      continue;
    }
    if (b.actual !== b.digest) {
      add('blob', b.digest, `corrupted blob: ${at} blobs/sha256/${b.digest.slice(7)} hashes to ${b.actual}${who.length ? ` (used by ${who.join(', ')})` : ''}`);
    }
    if (who.length === 0) add('extra', b.digest, `extra: blob ${b.digest} in ${at} is not used by any image`);
  }
  return { path: at, images, blobCount: archive.blobs.size, uniqueBlobBytes, totalBlobBytes };
}

/** The architecture of an ELF header (x86-64, aarch64, arm), or undefined. */
export function elfMachine(head: Buffer): 'amd64' | 'arm64' | 'arm' | '386' | 'other' | undefined {
  if (head.length < 20 || head.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const machine = head[5] === 2 ? head.readUInt16BE(18) : head.readUInt16LE(18);
  switch (machine) {
    case 0x3e:
      return 'amd64';
    case 0xb7:
      return 'arm64';
    case 0x28:
      return 'arm';
    case 0x03:
      return '386';
    default:
      return 'other';
  }
}
