import type { BuildResult } from '../commands/build.js';
import type { ImageArchiveResult } from '../engines/types.js';

/** --json: the `result` event of a build (README "Progress"), the last line on stdout. */
export function buildResultEvent(r: BuildResult): Record<string, unknown> {
  const bundles = r.dryRun
    ? r.plan.bundles.map((b) => ({ side: b.side, arch: b.arch, name: b.name }))
    : r.bundles.map((b) => ({ side: b.side, arch: b.arch, name: b.name, file: b.file, size: b.size, sha256: b.sha256 }));
  return { dryRun: r.dryRun, bundles, ...(r.checksumsFile ? { checksumsFile: r.checksumsFile } : {}) };
}

/** --json: the `result` event of `images`. */
export function imagesResultEvent(r: ImageArchiveResult): Record<string, unknown> {
  return { file: r.file, size: r.size, sha256: r.sha256, images: r.images.map((i) => ({ ref: i.ref, size: i.size })), uniqueBlobBytes: r.uniqueBlobBytes };
}
