import { UserError } from '../../errors.js';
import { isAttestation, parseDescriptor, type Descriptor } from '../../oci/descriptor.js';
import { MT } from '../../oci/media-types.js';
import { acceptedPlatforms, formatPlatform, platformRank, type Platform } from '../../oci/platform.js';

/** What we ask registries for; schema 1 is deliberately not listed (it is refused). */
export const MANIFEST_ACCEPT = [MT.ociIndex, MT.dockerList, MT.ociManifest, MT.dockerManifest].join(', ');

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
    return { kind: 'index', mediaType: mediaType || MT.ociIndex, manifests: j.manifests.map((d, i) => parseDescriptor(ref, d, `manifests[${i}]`)) };
  }
  if (j.config && Array.isArray(j.layers)) {
    return {
      kind: 'manifest',
      mediaType: mediaType || MT.ociManifest,
      config: parseDescriptor(ref, j.config, 'config'),
      layers: j.layers.map((d, i) => parseDescriptor(ref, d, `layers[${i}]`)),
    };
  }
  throw UserError.runtime('unsupported', `the manifest of ${ref} has an unknown format (media type '${mediaType || 'none'}')`, 'expected an OCI index/manifest or a Docker manifest list/schema 2 manifest');
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
