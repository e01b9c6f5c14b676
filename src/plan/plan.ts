import { join, resolve } from 'node:path';
import { UserError } from '../errors.js';
import { formatPlatform, type Arch, type Platform } from '../platform.js';
import { parseImageRef } from '../manifest/image-ref.js';
import type { LoadedManifest } from '../manifest/load.js';
import type { BinaryRole, BinarySpec, ImageEntry, ImageRole, Side } from '../manifest/schema.js';
import { ALL_SIDES } from '../manifest/schema.js';

export type Compression = 'none' | 'gzip' | 'zstd';
export const COMPRESSIONS: readonly Compression[] = ['none', 'gzip', 'zstd'];
/**
 * Default output compression, chosen by measurement (bench/compression.ts, README "Compression"):
 * images are already-compressed layers and make up most of a bundle, so gzip costs many seconds for a
 * few percent, and zstd is not readable by busybox or CentOS 7's tar. Plain tar unpacks everywhere.
 */
export const DEFAULT_COMPRESSION: Compression = 'none';

export interface PlannedImage {
  /** Canonical reference. */
  ref: string;
  component: string;
  role?: ImageRole;
  pull?: 'always' | 'never';
  engine?: 'registry' | 'docker';
}

export type ChecksumSource =
  | { kind: 'file'; url: string; upstreamUrl: string; entry: string; algorithm: 'sha256' | 'sha512' }
  | { kind: 'pinned'; algorithm: 'sha256'; digest: string };

export interface PlannedBinary {
  name: string;
  component: string;
  role?: BinaryRole;
  version: string;
  /** URL fetched (after --binary-mirror / binaryMirrors rewriting). */
  url: string;
  /** URL as the manifest names it (recorded in bundle.json). */
  upstreamUrl: string;
  /** Member of the downloaded .tar.gz to ship instead of the download itself. */
  extract?: string;
  /** Path inside the bundle's top directory. */
  dest: string;
  mode: number;
  checksum: ChecksumSource;
}

export interface BundlePlan {
  side: Side;
  arch: Arch;
  platform: Platform;
  /** `linux/arm64` */
  platformString: string;
  /** Top directory and base file name: `kubeprepare-cloud-v1.22.0-linux-arm64`. */
  name: string;
  /** Absolute output path (with the compression's extension). */
  outFile: string;
  images: PlannedImage[];
  binaries: PlannedBinary[];
  /** Things the user should know (a binary upstream does not publish for this arch, …). */
  notes: string[];
}

export interface BuildPlan {
  manifestPath: string;
  versions: Record<string, string>;
  /** Seconds since epoch: mtime of every tarball entry. */
  mtime: number;
  mtimeSource: 'SOURCE_DATE_EPOCH' | 'manifest';
  compression: Compression;
  outDir: string;
  bundles: BundlePlan[];
  /**
   * Image reference per role across the whole manifest (both sides), so one side's scripts can name an
   * image the other side ships (the cloud's CloudCore chart runs mosquitto on edge nodes).
   */
  imageRoles: Partial<Record<ImageRole, string>>;
}

export interface PlanOptions {
  platforms: Platform[];
  only?: Side;
  outDir: string;
  compression: Compression;
  /** `from=to` URL prefix rewrites, applied before the manifest's binaryMirrors. */
  binaryMirrors?: { from: string; to: string }[];
  env?: NodeJS.ProcessEnv;
}

export function archLabel(p: Platform): string {
  return p.architecture === 'arm' && p.variant && p.variant !== 'v7' ? `arm${p.variant}` : p.architecture;
}

export function bundleName(side: Side, kubeedgeVersion: string, p: Platform): string {
  return `kubeprepare-${side}-${kubeedgeVersion}-linux-${archLabel(p)}`;
}

export function extensionFor(c: Compression): string {
  return c === 'gzip' ? '.tar.gz' : c === 'zstd' ? '.tar.zst' : '.tar';
}

export function resolveMtime(lm: LoadedManifest, env: NodeJS.ProcessEnv = process.env): { mtime: number; source: BuildPlan['mtimeSource'] } {
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw !== undefined && raw !== '') {
    if (!/^\d+$/.test(raw)) {
      throw new UserError(`SOURCE_DATE_EPOCH='${raw}' is not a whole number of seconds`, { code: 'usage', hint: 'unset it or set it to e.g. $(git log -1 --format=%ct)' });
    }
    return { mtime: Number(raw), source: 'SOURCE_DATE_EPOCH' };
  }
  return { mtime: lm.manifest.sourceDateEpoch, source: 'manifest' };
}

function describeSettings(i: { engine?: string | undefined; pull?: string | undefined }): string {
  return `engine ${i.engine ?? '(the build\'s)'}, pull ${i.pull ?? 'always'}`;
}

export function makePlan(lm: LoadedManifest, opts: PlanOptions): BuildPlan {
  const { manifest } = lm;
  const kubeedgeVersion = manifest.components.kubeedge.version;
  const sides: Side[] = opts.only ? [opts.only] : [...ALL_SIDES];
  const mirrors = [...(opts.binaryMirrors ?? []), ...(manifest.binaryMirrors ?? [])];
  const { mtime, source } = resolveMtime(lm, opts.env);
  const outDir = resolve(opts.outDir);
  const bundles: BundlePlan[] = [];

  for (const platform of opts.platforms) {
    const arch = platform.architecture;
    for (const side of sides) {
      const { images, binaries, notes } = planSide(lm, side, arch, mirrors);
      const name = bundleName(side, kubeedgeVersion, platform);
      bundles.push({
        side,
        arch,
        platform,
        platformString: formatPlatform(platform),
        name,
        outFile: join(outDir, `${name}${extensionFor(opts.compression)}`),
        images,
        binaries,
        notes,
      });
    }
  }
  const { versions, imageRoles } = versionsAndRoles(lm);
  return { manifestPath: lm.path, versions, mtime, mtimeSource: source, compression: opts.compression, outDir, bundles, imageRoles };
}

/** The images and binaries of one side's bundle for one arch, component by component, and the notes on what is left out. */
function planSide(lm: LoadedManifest, side: Side, arch: Arch, mirrors: { from: string; to: string }[]): Pick<BundlePlan, 'images' | 'binaries' | 'notes'> {
  const images: PlannedImage[] = [];
  const seen = new Map<string, PlannedImage>();
  const binaries: PlannedBinary[] = [];
  const notes: string[] = [];
  for (const [component, spec] of Object.entries(lm.manifest.components)) {
    for (const entry of spec.images?.[side] ?? []) {
      const planned = planImage(lm, component, side, entry, seen);
      if (planned) images.push(planned);
    }
    (spec.binaries ?? []).forEach((b, i) => {
      if (!b.sides.includes(side)) return;
      const where = `${lm.displayPath}: components.${component}.binaries[${i}] (${b.name})`;
      if (b.arches && !b.arches.includes(arch)) {
        notes.push(`${b.name} ${b.version ?? spec.version}: upstream publishes no linux/${arch} build; not bundled`);
        return;
      }
      binaries.push(planBinary(b, component, b.version ?? spec.version, arch, mirrors, where));
    });
  }
  const dests = new Map<string, string>();
  for (const b of binaries) {
    const prev = dests.get(b.dest);
    if (prev) throw new UserError(`${lm.displayPath}: binaries '${prev}' and '${b.name}' both write ${b.dest} in the ${side} bundle`, { code: 'manifest', hint: 'give one of them another dest' });
    dests.set(b.dest, b.name);
  }
  return { images, binaries, notes };
}

/** One image entry of a component; undefined when the side already has it (`seen`, by canonical reference). */
function planImage(lm: LoadedManifest, component: string, side: Side, entry: ImageEntry, seen: Map<string, PlannedImage>): PlannedImage | undefined {
  const e = typeof entry === 'string' ? { ref: entry } : entry;
  const ref = parseImageRef(e.ref).canonical;
  const first = seen.get(ref);
  if (first) {
    // The same image listed again (another component, or another spelling) is bundled once;
    // listed with other per-image settings, it would be unclear which hold.
    if (first.engine !== e.engine || first.pull !== e.pull) {
      throw new UserError(
        `${lm.displayPath}: components.${component}.images.${side}: ${ref} is also listed by components.${first.component} with another engine/pull (${describeSettings(first)} vs ${describeSettings(e)})`,
        { code: 'manifest', hint: 'give the image the same engine and pull settings everywhere it is listed, or list it once' },
      );
    }
    return undefined;
  }
  const planned: PlannedImage = { ref, component, ...(e.role ? { role: e.role } : {}), ...(e.pull ? { pull: e.pull } : {}), ...(e.engine ? { engine: e.engine } : {}) };
  seen.set(ref, planned);
  return planned;
}

/** Each component's version, and the first image listed for each role on either side. */
function versionsAndRoles(lm: LoadedManifest): Pick<BuildPlan, 'versions' | 'imageRoles'> {
  const versions: Record<string, string> = {};
  const imageRoles: Partial<Record<ImageRole, string>> = {};
  for (const [k, v] of Object.entries(lm.manifest.components)) {
    versions[k] = v.version;
    for (const side of ALL_SIDES) {
      for (const e of v.images?.[side] ?? []) {
        if (typeof e !== 'string' && e.role && !imageRoles[e.role]) imageRoles[e.role] = parseImageRef(e.ref).canonical;
      }
    }
  }
  return { versions, imageRoles };
}

function planBinary(b: BinarySpec, component: string, version: string, arch: Arch, mirrors: { from: string; to: string }[], where: string): PlannedBinary {
  const vars: Record<string, string> = { version, versionBare: version.replace(/^v/, ''), arch };
  for (const [k, perArch] of Object.entries(b.archVars ?? {})) {
    const v = perArch[arch];
    if (v === undefined) throw new UserError(`${where}: archVars.${k} has no value for ${arch}`, { code: 'manifest', hint: `add '${arch}: …' under archVars.${k}, or list the supported arches under 'arches'` });
    vars[k] = v;
  }
  const fill = (tpl: string, key: string) => fillTemplate(tpl, vars, `${where}.${key}`);
  const upstreamUrl = fill(b.url, 'url');
  const fileName = decodeURIComponent(new URL(upstreamUrl).pathname.split('/').pop() ?? b.name);
  let checksum: ChecksumSource;
  if ('checksumUrl' in b.sha256) {
    const upstream = fill(b.sha256.checksumUrl, 'sha256.checksumUrl');
    checksum = {
      kind: 'file',
      url: applyMirrors(upstream, mirrors),
      upstreamUrl: upstream,
      entry: b.sha256.entry ? fill(b.sha256.entry, 'sha256.entry') : fileName,
      algorithm: b.sha256.algorithm ?? 'sha256',
    };
  } else {
    const digest = b.sha256.pinned[arch] ?? b.sha256.pinned.any;
    if (!digest) throw new UserError(`${where}: sha256.pinned has no digest for ${arch}`, { code: 'manifest', hint: `add '${arch}: <sha256>' (or 'any:') under sha256.pinned` });
    checksum = { kind: 'pinned', algorithm: 'sha256', digest };
  }
  const mode = b.mode === undefined ? (b.dest.startsWith('bin/') ? 0o755 : 0o644) : typeof b.mode === 'number' ? b.mode : parseInt(b.mode, 8);
  return {
    name: b.name,
    component,
    ...(b.role ? { role: b.role } : {}),
    version,
    url: applyMirrors(upstreamUrl, mirrors),
    upstreamUrl,
    ...(b.extract ? { extract: fill(b.extract, 'extract') } : {}),
    dest: fill(b.dest, 'dest'),
    mode,
    checksum,
  };
}

export function fillTemplate(tpl: string, vars: Record<string, string>, where: string): string {
  return tpl.replace(/\{([A-Za-z][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const v = vars[name];
    if (v === undefined) {
      throw new UserError(`${where}: unknown placeholder {${name}}`, { code: 'manifest', hint: `use one of ${Object.keys(vars).map((k) => `{${k}}`).join(', ')}, or define it under archVars` });
    }
    return v;
  });
}

export function applyMirrors(url: string, mirrors: { from: string; to: string }[]): string {
  for (const m of mirrors) {
    if (url.startsWith(m.from)) return m.to + url.slice(m.from.length);
  }
  return url;
}
