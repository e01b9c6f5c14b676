import { formatPlatform, parseArch, type Platform } from '../platform.js';
import type { BundleInventory } from './inventory.js';
import type { BundleScan } from './scan.js';
import { analyseImages, imageInventoryProblems } from './check-images.js';
import {
  binaryClaimProblems,
  elfProblems,
  expectedFileProblems,
  extraFileProblems,
  modeProblems,
  unsafePathProblems,
  type InventoryFiles,
  type Listings,
} from './check-files.js';

export { NOT_IN_INVENTORY, elfMachine } from './check-files.js';

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

/** Where the checks put what they find. */
export type AddProblem = (kind: ProblemKind, subject: string, message: string) => void;

export function analyseBundle(scan: BundleScan, opts: CheckOptions = {}): BundleAnalysis {
  const problems: Problem[] = [];
  const add: AddProblem = (kind, subject, message) => void problems.push({ kind, subject, message });
  tarProblems(scan, add);
  const sums = readSums(scan, add);
  const inventory = readInventory(scan, add);
  const invFiles: InventoryFiles = new Map((inventory?.files ?? []).map((f) => [f.path, f]));
  const topName = scan.topDirs.length === 1 ? scan.topDirs[0] : undefined;
  const side: 'cloud' | 'edge' | undefined = inventory?.side ?? (topName?.includes('-cloud-') ? 'cloud' : topName?.includes('-edge-') ? 'edge' : undefined);
  const want = checkedPlatform(inventory, opts.platform, add);
  const required = requiredFiles(inventory, side);
  const listed: Listings = { sums, inventory, invFiles, required };
  for (const path of [...new Set<string>([...(sums?.keys() ?? []), ...invFiles.keys(), ...required.keys()])].sort()) expectedFileProblems(scan, listed, path, add);
  extraFileProblems(scan, listed, add);
  unsafePathProblems(scan, add);
  modeProblems(scan, invFiles, add);
  binaryClaimProblems(scan, listed, add);
  if (want) elfProblems(scan, want, add);
  const images = imagesProblems(scan, listed, want, add);
  return {
    name: inventory?.name ?? topName,
    side,
    bundlePlatform: inventory?.platform,
    platform: want ? formatPlatform(want) : undefined,
    inventory,
    sums,
    images,
    requiredFiles: [...required.keys()].sort(),
    problems,
  };
}

/** The tar stream itself: complete, one top directory, nothing but files and directories. */
function tarProblems(scan: BundleScan, add: AddProblem): void {
  if (!scan.read.complete) {
    const p = scan.read.problem ?? 'incomplete archive';
    add(/^truncated|^empty/.test(p) ? 'truncated' : 'corrupt', scan.file, `${p}${/^truncated/.test(p) ? ' — the tarball was not copied completely' : ''}`);
  }
  if (scan.topDirs.length !== 1) {
    add('layout', scan.file, scan.topDirs.length === 0 ? 'no top directory: a bundle holds one directory with everything in it' : `${scan.topDirs.length} top-level entries (${scan.topDirs.join(', ')}); a bundle has exactly one top directory`);
  }
  for (const s of scan.strays) add('layout', s, `unexpected entry ${s}: a bundle holds only regular files and directories under its top directory`);
}

/** SHA256SUMS as path → sha256 (undefined when the bundle has none); bad lines are problems. */
function readSums(scan: BundleScan, add: AddProblem): Map<string, string> | undefined {
  const sumsText = scan.kept.get('SHA256SUMS');
  if (!sumsText) return undefined;
  const sums = new Map<string, string>();
  sumsText
    .toString('utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      const m = /^([a-f0-9]{64}) [ *](.+)$/.exec(line);
      if (!m?.[1] || !m[2]) return add('corrupt', 'SHA256SUMS', `SHA256SUMS line ${i + 1} is not "<sha256>  <path>": ${line.slice(0, 120)}`);
      const path = m[2].replace(/^\.\//, '');
      if (path.startsWith('/') || path.split('/').includes('..')) return add('corrupt', 'SHA256SUMS', `SHA256SUMS line ${i + 1} names a path outside the bundle: ${path}`);
      sums.set(path, m[1]);
    });
  return sums;
}

/** bundle.json, when it is there and is an inventory. */
function readInventory(scan: BundleScan, add: AddProblem): BundleInventory | undefined {
  const invText = scan.kept.get('bundle.json');
  if (!invText) return undefined;
  try {
    const parsed = JSON.parse(invText.toString('utf8')) as BundleInventory;
    if (parsed && typeof parsed === 'object' && Array.isArray(parsed.files)) return parsed;
    add('inventory', 'bundle.json', 'bundle.json is not a kubeprepare inventory (no files list)');
  } catch (e) {
    add('corrupt', 'bundle.json', `bundle.json is not valid JSON: ${(e as Error).message}`);
  }
  return undefined;
}

/** The platform checked against: --arch, else bundle.json's (which must agree with --arch). */
function checkedPlatform(inventory: BundleInventory | undefined, asked: Platform | undefined, add: AddProblem): Platform | undefined {
  if (!inventory?.platform) return asked;
  let invPlatform: Platform | undefined;
  try {
    invPlatform = parseArch(inventory.platform);
  } catch {
    add('inventory', 'bundle.json', `bundle.json names an unknown platform '${inventory.platform}'`);
  }
  if (invPlatform && asked && formatPlatform(invPlatform) !== formatPlatform(asked)) {
    add('platform', 'bundle.json', `the bundle is for ${formatPlatform(invPlatform)} (bundle.json), but ${formatPlatform(asked)} was asked for (--arch)`);
  }
  return asked ?? invPlatform;
}

/** The files the install scripts need, with why: REQUIRED_FILES, bundle.json's binaries and images archive. */
function requiredFiles(inventory: BundleInventory | undefined, side: 'cloud' | 'edge' | undefined): Map<string, string> {
  const required = new Map<string, string>();
  for (const f of REQUIRED_FILES.common) required.set(f, 'needed by install.sh/verify.sh');
  if (side) for (const f of REQUIRED_FILES[side]) required.set(f, `needed by the ${side} install.sh`);
  for (const b of inventory?.binaries ?? []) if (!required.has(b.path)) required.set(b.path, `binary ${b.name} listed in bundle.json`);
  if (inventory?.images.archive) required.set(inventory.images.archive, 'images archive listed in bundle.json');
  return required;
}

/** The images archive (check-images.ts) and bundle.json's claims about it; undefined when there is none to read. */
function imagesProblems(scan: BundleScan, { inventory, invFiles }: Listings, want: Platform | undefined, add: AddProblem): ImagesFacts | undefined {
  const archivePath = inventory?.images.archive ?? (scan.images.size > 0 ? [...scan.images.keys()][0] : undefined);
  if (!archivePath) return undefined;
  const archive = scan.images.get(archivePath);
  const f = scan.files.get(archivePath);
  if (!archive || !f?.complete) return undefined;
  const facts = analyseImages(archive, want, add);
  const inv = inventory?.images;
  if (!inv) return facts;
  if (inv.sha256 && f.sha256 && inv.sha256 !== f.sha256 && invFiles.get(archivePath)?.sha256 === f.sha256) {
    add('inventory', archivePath, `bundle.json images.sha256 is ${inv.sha256}, ${archivePath} has ${f.sha256}`);
  }
  imageInventoryProblems(inv, facts, archive, add);
  return facts;
}
