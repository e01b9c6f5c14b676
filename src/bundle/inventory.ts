import type { BuildPlan, BundlePlan } from '../plan/plan.js';
import type { FetchedBinary } from '../binaries/fetch.js';
import type { ImageArchiveResult } from '../engines/types.js';
import { formatPlatform } from '../oci/platform.js';
import type { BundleFile } from './write.js';
import { parseImageRef } from '../manifest/image-ref.js';
import { TOOL_VERSION } from '../version.js';
import type { ImageNeed } from './needs.js';
import type { DiskStep } from './disk.js';

/** bundle.json: what a bundle holds, with digests, sizes and package URLs. */
export interface BundleInventory {
  schemaVersion: 1;
  name: string;
  side: 'cloud' | 'edge';
  arch: string;
  platform: string;
  kubeprepareVersion: string;
  sourceDateEpoch: number;
  components: Record<string, { version: string }>;
  images: {
    archive: string | null;
    sha256: string | null;
    size: number;
    uniqueBlobBytes: number;
    totalBlobBytes: number;
    list: {
      ref: string;
      component: string;
      role: string | null;
      manifestDigest: string;
      configDigest: string;
      platform: string;
      size: number;
      purl: string;
      /** `registry`: as the registry serves it; `docker`: from a Docker daemon, re-packed by `docker save`. */
      engine: 'registry' | 'docker';
    }[];
  };
  binaries: {
    name: string;
    component: string;
    version: string;
    path: string;
    url: string;
    downloadSha256: string;
    extractedFrom: string | null;
    sha256: string;
    size: number;
    purl: string;
  }[];
  files: { path: string; sha256: string; size: number; mode: string }[];
  notes: string[];
  /** The images this side's nodes will run, each with what runs it (src/bundle/needs.ts). */
  needs?: ImageNeed[];
  /**
   * Disk space per install step and target path (disk.ts); `unpackedBundleBytes` is the unpacked bundle
   * itself (already on the host when install.sh runs); estimates count unpacked data as `unpackFactor` x.
   */
  disk?: { file: string; unpackFactor: number; unpackedBundleBytes: number; steps: DiskStep[] };
}

export function imagePurl(ref: string, manifestDigest: string, platform: string): string {
  const r = parseImageRef(ref);
  const name = r.repository.split('/').pop() ?? r.repository;
  const qs = new URLSearchParams({ repository_url: `${r.registry}/${r.repository}`, ...(r.tag ? { tag: r.tag } : {}), arch: platform.split('/').slice(1).join('/') });
  return `pkg:oci/${name}@${encodeURIComponent(manifestDigest)}?${qs.toString()}`;
}

export function binaryPurl(name: string, version: string, url: string, sha256: string): string {
  const qs = new URLSearchParams({ download_url: url, checksum: `sha256:${sha256}` });
  return `pkg:generic/${encodeURIComponent(name)}@${encodeURIComponent(version)}?${qs.toString()}`;
}

export function makeInventory(
  plan: BuildPlan,
  bundle: BundlePlan,
  binaries: FetchedBinary[],
  images: ImageArchiveResult | undefined,
  imagesPath: string | null,
  files: BundleFile[],
): BundleInventory {
  const roleOf = new Map(bundle.images.map((i) => [i.ref, i]));
  return {
    schemaVersion: 1,
    name: bundle.name,
    side: bundle.side,
    arch: bundle.arch,
    platform: bundle.platformString,
    kubeprepareVersion: TOOL_VERSION,
    sourceDateEpoch: plan.mtime,
    components: Object.fromEntries(Object.entries(plan.versions).map(([k, v]) => [k, { version: v }])),
    images: {
      archive: images ? imagesPath : null,
      sha256: images?.sha256 ?? null,
      size: images?.size ?? 0,
      uniqueBlobBytes: images?.uniqueBlobBytes ?? 0,
      totalBlobBytes: images?.totalBlobBytes ?? 0,
      list: (images?.images ?? []).map((i) => {
        // The platform taken for this image: the bundle's, or a lower arm variant (arm/v6 in an arm/v7 bundle).
        const platform = formatPlatform(i.platform);
        return {
          ref: i.ref,
          component: roleOf.get(i.ref)?.component ?? '',
          role: roleOf.get(i.ref)?.role ?? null,
          manifestDigest: i.manifestDigest,
          configDigest: i.configDigest,
          platform,
          size: i.size,
          purl: imagePurl(i.ref, i.manifestDigest, platform),
          engine: i.engine,
        };
      }),
    },
    binaries: binaries.map((f) => ({
      name: f.binary.name,
      component: f.binary.component,
      version: f.binary.version,
      path: f.binary.dest,
      url: f.binary.upstreamUrl,
      downloadSha256: f.downloadSha256,
      extractedFrom: f.binary.extract ?? null,
      sha256: f.sha256,
      size: f.size,
      purl: binaryPurl(f.binary.name, f.binary.version, f.binary.upstreamUrl, f.downloadSha256),
    })),
    files: [...files]
      .sort((a, b) => (a.path < b.path ? -1 : 1))
      .map((f) => ({ path: f.path, sha256: f.sha256, size: f.size, mode: `0${f.mode.toString(8)}` })),
    notes: bundle.notes,
  };
}
