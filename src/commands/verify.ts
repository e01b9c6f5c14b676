import { basename } from 'node:path';
import type { Platform } from '../platform.js';
import { scanBundle } from '../bundle/scan.js';
import { analyseBundle, type Problem } from '../bundle/check.js';
import type { TarCompression } from '../bundle/read.js';
import { fmtBytes } from '../util/format.js';
import { bundleGaps } from '../bundle/needs.js';
import { isUserError } from '../errors.js';

export interface VerifyOptions {
  /** The bundle tarball (.tar, .tar.gz or .tar.zst; detected by content). */
  file: string;
  /** Check the images against this platform instead of bundle.json's. */
  platform?: Platform;
}

export interface VerifyResult {
  file: string;
  ok: boolean;
  compression: TarCompression;
  name: string | undefined;
  side: 'cloud' | 'edge' | undefined;
  /** The platform bundle.json names. */
  platform: string | undefined;
  /** The platform the images were checked against (--arch, else the bundle's). */
  checkedPlatform: string | undefined;
  /** Regular files in the bundle. */
  files: number;
  images: number;
  blobs: number;
  bytes: number;
  problems: Problem[];
}

/**
 * Offline check of a bundle tarball, read once as a stream (nothing unpacked): every file against
 * SHA256SUMS and bundle.json, every image blob against its digest, every referenced blob present, image
 * platforms, the files the install scripts need, truncation. Collects every problem, not just the first.
 */
export async function verify(opts: VerifyOptions): Promise<VerifyResult> {
  const scan = await scanBundle(opts.file);
  const a = analyseBundle(scan, opts.platform ? { platform: opts.platform } : {});
  // Every image this side's nodes will run is in the archive (needs.ts): from bundle.json and the bundle's own files.
  if (a.side && a.images) {
    try {
      for (const g of bundleGaps({ side: a.side, recorded: a.inventory?.needs, kept: scan.kept, k3sVersion: a.inventory?.components?.k3s?.version, shipped: a.images.images.map((i) => i.ref) })) {
        a.problems.push({ kind: 'missing', subject: g.ref, message: `missing image: ${g.ref} is needed by ${g.consumers.join('; ')}, and ${a.images.path} does not hold it` });
      }
    } catch (e) {
      if (!isUserError(e)) throw e;
      a.problems.push({ kind: 'inventory', subject: 'install.sh', message: `cannot derive the images this bundle needs: ${e.message}` });
    }
  }
  return {
    file: opts.file,
    ok: a.problems.length === 0,
    compression: scan.compression,
    name: a.name,
    side: a.side,
    platform: a.bundlePlatform,
    checkedPlatform: a.platform,
    files: scan.files.size,
    images: a.images?.images.length ?? 0,
    blobs: a.images?.blobCount ?? 0,
    bytes: scan.fileSize,
    problems: a.problems,
  };
}

/** One line when OK; otherwise a header line and one line per problem. */
export function verifyToText(r: VerifyResult): string {
  const against = r.checkedPlatform && r.checkedPlatform !== r.platform ? ` (checked against ${r.checkedPlatform})` : '';
  const what = `${basename(r.file)}: ${r.side ?? '?'} bundle ${r.name ?? '?'} for ${r.platform ?? '?'}${against}`;
  if (r.ok) {
    return `OK ${what}: ${r.files} files, ${r.images} images (${r.blobs} blobs) match SHA256SUMS, bundle.json and their digests (${fmtBytes(r.bytes)}${r.compression === 'none' ? '' : `, ${r.compression}`})`;
  }
  return [`FAILED ${what}: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}`, ...r.problems.map((p) => `  ${p.message}`)].join('\n');
}

export function verifyToJson(r: VerifyResult): object {
  return r;
}
