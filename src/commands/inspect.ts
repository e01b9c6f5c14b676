import { basename } from 'node:path';
import { UserError } from '../errors.js';
import { scanBundle } from '../bundle/scan.js';
import { analyseBundle } from '../bundle/check.js';
import type { TarCompression } from '../bundle/read.js';
import { fmtBytes, table } from '../util/format.js';
import { parseArch, parsePlatformString, platformExact } from '../platform.js';

export interface InspectOptions {
  file: string;
}

export interface InspectResult {
  file: string;
  name: string;
  side: 'cloud' | 'edge';
  platform: string;
  compression: TarCompression;
  size: number;
  kubeprepareVersion: string;
  sourceDateEpoch: number;
  components: { name: string; version: string }[];
  images: { ref: string; component: string; role: string | null; digest: string; configDigest: string; platform: string; /** false when a lower arm variant was taken (arm/v6 in an arm/v7 bundle) */ platformExact: boolean; size: number; layers: number; purl: string; engine: string | null }[];
  binaries: { name: string; component: string; version: string; path: string; size: number; sha256: string; url: string; purl: string }[];
  files: number;
  hasSbom: boolean;
  dedup: {
    /** From bundle.json. */
    totalBlobBytes: number;
    uniqueBlobBytes: number;
    savedBytes: number;
    /** As counted in the images archive itself; undefined when the bundle has no images. */
    archive: { totalBlobBytes: number; uniqueBlobBytes: number; blobs: number } | undefined;
    /** bundle.json and the archive agree. */
    consistent: boolean;
  };
  /** Problems seen while reading (inspect does not hash content; run verify for a full check). */
  warnings: string[];
}

/**
 * What a bundle holds, read from bundle.json and cross-checked against the images archive, in one pass
 * over the tarball as a stream (nothing unpacked, content not hashed: `verify` does that).
 */
export async function inspect(opts: InspectOptions): Promise<InspectResult> {
  const scan = await scanBundle(opts.file, { hash: false });
  const a = analyseBundle(scan);
  const inv = a.inventory;
  if (!inv) {
    const why = scan.read.complete ? 'it has no readable bundle.json' : scan.read.problem;
    throw UserError.runtime('bundle', `${opts.file} is not a readable kubeprepare bundle: ${why}`, 'give a tarball written by kubeprepare build; kubeprepare verify lists what is wrong');
  }
  const facts = a.images;
  const fromArchive = new Map((facts?.images ?? []).map((i) => [i.manifestDigest, i]));
  const images = inv.images.list.map((i) => {
    const got = fromArchive.get(i.manifestDigest);
    return {
      ref: i.ref,
      component: i.component,
      role: i.role,
      digest: i.manifestDigest,
      configDigest: i.configDigest,
      platform: got?.platform || i.platform,
      platformExact: isExact(inv.platform, got?.platform || i.platform),
      size: got?.size ?? i.size,
      layers: got?.layers ?? 0,
      purl: i.purl,
      // bundles from before this field have none
      engine: (i as { engine?: string }).engine ?? null,
    };
  });
  const archive = facts ? { totalBlobBytes: facts.totalBlobBytes, uniqueBlobBytes: facts.uniqueBlobBytes, blobs: facts.blobCount } : undefined;
  const consistent = archive ? archive.totalBlobBytes === inv.images.totalBlobBytes && archive.uniqueBlobBytes === inv.images.uniqueBlobBytes : inv.images.list.length === 0;
  return {
    file: opts.file,
    name: inv.name,
    side: inv.side,
    platform: inv.platform,
    compression: scan.compression,
    size: scan.fileSize,
    kubeprepareVersion: inv.kubeprepareVersion,
    sourceDateEpoch: inv.sourceDateEpoch,
    components: Object.entries(inv.components).map(([name, v]) => ({ name, version: v.version })),
    images,
    binaries: inv.binaries.map((b) => ({ name: b.name, component: b.component, version: b.version, path: b.path, size: b.size, sha256: b.sha256, url: b.url, purl: b.purl })),
    files: scan.files.size,
    hasSbom: scan.files.has('sbom.cdx.json'),
    dedup: {
      totalBlobBytes: inv.images.totalBlobBytes,
      uniqueBlobBytes: inv.images.uniqueBlobBytes,
      savedBytes: inv.images.totalBlobBytes - inv.images.uniqueBlobBytes,
      archive,
      consistent,
    },
    warnings: a.problems.map((p) => p.message),
  };
}

/** The image platform is the bundle's own (not a lower variant of it). */
function isExact(bundlePlatform: string, imagePlatform: string): boolean {
  try {
    return platformExact(parseArch(bundlePlatform), parsePlatformString(imagePlatform));
  } catch {
    return imagePlatform === bundlePlatform;
  }
}

const pct = (part: number, whole: number) => (whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '0%');
const shortDigest = (d: string) => (d.startsWith('sha256:') ? `sha256:${d.slice(7, 19)}` : d.slice(0, 12));

export function inspectToText(r: InspectResult): string {
  const out: string[] = [];
  out.push(`${basename(r.file)}: ${r.side} bundle ${r.name} for ${r.platform}`);
  out.push(`  ${fmtBytes(r.size)}${r.compression === 'none' ? '' : ` (${r.compression})`}, ${r.files} files, built by kubeprepare ${r.kubeprepareVersion}, sourceDateEpoch ${r.sourceDateEpoch} (${new Date(r.sourceDateEpoch * 1000).toISOString()})${r.hasSbom ? ', with sbom.cdx.json' : ''}`);
  out.push('', 'Components', table(r.components.map((c) => [c.name, c.version]), ['component', 'version']));
  out.push(
    '',
    `Images (${r.images.length})`,
    r.images.length === 0
      ? '  (none)'
      : table(
          r.images.map((i) => [i.ref, i.platformExact ? i.platform : `${i.platform} (lower variant, for ${r.platform})`, shortDigest(i.digest), fmtBytes(i.size), i.component, i.engine ?? '?']),
          ['image', 'platform', 'digest', 'size', 'component', 'engine'],
        ),
  );
  out.push(
    '',
    `Binaries (${r.binaries.length})`,
    r.binaries.length === 0 ? '  (none)' : table(r.binaries.map((b) => [b.path, b.name, b.version, fmtBytes(b.size), `sha256:${b.sha256.slice(0, 12)}`]), ['path', 'name', 'version', 'size', 'sha256']),
  );
  const d = r.dedup;
  out.push('', 'Deduplication');
  if (r.images.length === 0) out.push('  no images');
  else {
    out.push(
      `  image blobs ${fmtBytes(d.totalBlobBytes)} before sharing, ${fmtBytes(d.uniqueBlobBytes)} stored: saved ${fmtBytes(d.savedBytes)} (${pct(d.savedBytes, d.totalBlobBytes)})`,
      d.archive
        ? d.consistent
          ? `  cross-checked: ${d.archive.blobs} distinct blobs in the images archive add up to the same figures`
          : `  MISMATCH: the images archive holds ${fmtBytes(d.archive.uniqueBlobBytes)} in ${d.archive.blobs} blobs (${d.archive.uniqueBlobBytes} bytes) and its images add up to ${d.archive.totalBlobBytes} bytes; bundle.json says ${d.uniqueBlobBytes} and ${d.totalBlobBytes}`
        : '  (no images archive found to cross-check)',
    );
  }
  if (r.warnings.length > 0) {
    out.push('', `Warnings (${r.warnings.length}; run kubeprepare verify for a full check)`, ...r.warnings.map((w) => `  ${w}`));
  }
  return out.join('\n');
}
