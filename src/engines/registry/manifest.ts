import { UserError } from '../../errors.js';
import { acceptedPlatforms, formatPlatform, platformRank, type Platform } from '../../platform.js';

export const MT = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

/** What we ask registries for; schema 1 is deliberately not listed (it is refused). */
export const MANIFEST_ACCEPT = [MT.ociIndex, MT.dockerList, MT.ociManifest, MT.dockerManifest].join(', ');

export const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string; 'os.version'?: string };
  annotations?: Record<string, string>;
  urls?: string[];
}

export type ParsedManifest =
  | { kind: 'index'; mediaType: string; manifests: Descriptor[] }
  | { kind: 'manifest'; mediaType: string; config: Descriptor; layers: Descriptor[] };

/** Parses manifest bytes; `contentType` is the response's Content-Type (used when the body has no mediaType). */
export function parseManifest(ref: string, body: Buffer, contentType: string | undefined): ParsedManifest {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw UserError.runtime('registry', `the manifest of ${ref} is not valid JSON`, 'the registry or mirror returned something that is not an image manifest');
  }
  const ct = (contentType ?? '').split(';')[0]?.trim() ?? '';
  const mediaType = typeof j.mediaType === 'string' && j.mediaType ? j.mediaType : ct;
  if (j.schemaVersion === 1 || mediaType === MT.dockerSchema1 || mediaType === MT.dockerSchema1Signed) {
    throw new UserError(`${ref} uses the Docker image manifest schema 1, which is not supported`, {
      code: 'unsupported',
      hint: 'schema 1 images are deprecated; push the image again with a current Docker/buildkit (schema 2 or OCI)',
    });
  }
  if (Array.isArray(j.manifests)) {
    return { kind: 'index', mediaType: mediaType || MT.ociIndex, manifests: j.manifests.map((d, i) => descriptor(ref, d, `manifests[${i}]`)) };
  }
  if (j.config && Array.isArray(j.layers)) {
    return {
      kind: 'manifest',
      mediaType: mediaType || MT.ociManifest,
      config: descriptor(ref, j.config, 'config'),
      layers: j.layers.map((d, i) => descriptor(ref, d, `layers[${i}]`)),
    };
  }
  throw UserError.runtime('unsupported', `the manifest of ${ref} has an unknown format (media type '${mediaType || 'none'}')`, 'expected an OCI index/manifest or a Docker manifest list/schema 2 manifest');
}

function descriptor(ref: string, v: unknown, where: string): Descriptor {
  const d = v as Partial<Descriptor> | null;
  if (!d || typeof d !== 'object' || typeof d.digest !== 'string' || typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw UserError.runtime('registry', `the manifest of ${ref} has an invalid descriptor at ${where}`);
  }
  if (!DIGEST_RE.test(d.digest)) {
    throw UserError.runtime('unsupported', `the manifest of ${ref} uses digest '${d.digest}' at ${where}; only sha256 digests are supported`);
  }
  return { ...d, mediaType: typeof d.mediaType === 'string' ? d.mediaType : '', digest: d.digest, size: d.size } as Descriptor;
}

/** Attestation manifests (buildkit provenance/SBOM) are index entries, not images. */
export function isAttestation(d: Descriptor): boolean {
  if (d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') return true;
  return d.platform?.os === 'unknown' && d.platform?.architecture === 'unknown';
}

/** Picks the entry for `want` from an index; never another architecture. */
export function selectPlatform(ref: string, index: Descriptor[], want: Platform): Descriptor {
  const images = index.filter((d) => !isAttestation(d));
  // Best rank first (arm/v7, then v6, then v5, as containerd's platforms.Only orders them); among equals
  // the first in index order (arm64 'v8' and no variant are the same platform).
  let hit: Descriptor | undefined;
  let best = Infinity;
  for (const d of images) {
    const r = d.platform ? platformRank(want, d.platform) : -1;
    if (r >= 0 && r < best) [hit, best] = [d, r];
  }
  if (hit) return hit;
  const have = images.map((d) => (d.platform ? formatPlatform({ os: d.platform.os ?? '?', architecture: d.platform.architecture ?? '?', variant: d.platform.variant }) : 'unknown'));
  throw platformError(ref, want, have);
}

export function platformError(ref: string, want: Platform, have: string[]): UserError {
  const list = [...new Set(have)].sort();
  const accepted = acceptedPlatforms(want).map(formatPlatform);
  return new UserError(`${ref} has no image for ${formatPlatform(want)}; it has: ${list.length ? list.join(', ') : 'no platforms'}`, {
    code: 'platform',
    hint: `${accepted.length > 1 ? `a ${formatPlatform(want)} bundle takes ${accepted.join(', then ')} (as containerd on such a host does) and never another architecture; ` : ''}pick an architecture the image provides, or use another image/tag that is built for ${formatPlatform(want)}`,
  });
}

/** The platform in an image config (`os`, `architecture`, `variant`). */
export function configPlatform(ref: string, body: Buffer): { os: string; architecture: string; variant?: string } {
  let j: { os?: unknown; architecture?: unknown; variant?: unknown };
  try {
    j = JSON.parse(body.toString('utf8')) as typeof j;
  } catch {
    throw UserError.runtime('registry', `the image config of ${ref} is not valid JSON`);
  }
  const os = typeof j.os === 'string' ? j.os : '';
  const architecture = typeof j.architecture === 'string' ? j.architecture : '';
  const variant = typeof j.variant === 'string' && j.variant ? j.variant : undefined;
  return variant ? { os, architecture, variant } : { os, architecture };
}
