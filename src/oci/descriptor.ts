import { UserError } from '../errors.js';
import { isDigest, type Digest } from './digest.js';
import { ANNOTATION_DOCKER_REFERENCE_TYPE } from './media-types.js';
import type { PlatformLike } from './platform.js';

/**
 * The one descriptor shape (OCI image-spec descriptor.md): what a manifest says about a blob it names.
 * Index entries carry `platform`; `urls` is kept as read, never fetched.
 */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  /** As the index entry has it (registries may omit fields). */
  platform?: PlatformLike | undefined;
  annotations?: Record<string, string> | undefined;
  urls?: string[] | undefined;
}

/** What the blob cache needs of a descriptor. */
export type BlobRef = Pick<Descriptor, 'digest' | 'size'>;

/** A descriptor as found in JSON that was not checked (a bundle being verified): any field may be missing, the digest unparsed. */
export type UncheckedDescriptor = Partial<Omit<Descriptor, 'digest'>> & { digest?: string | undefined };

/**
 * Checks one descriptor of `ref`'s manifest (`where`: `layers[2]`, `manifests[0]`...): a sha256 digest and
 * a non-negative integer size; a missing media type is ''. Other fields are kept as they are.
 */
export function parseDescriptor(ref: string, v: unknown, where: string): Descriptor {
  const d = v as UncheckedDescriptor | null;
  if (!d || typeof d !== 'object' || typeof d.digest !== 'string' || typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw UserError.runtime('registry', `the manifest of ${ref} has an invalid descriptor at ${where}`);
  }
  if (!isDigest(d.digest)) {
    throw UserError.runtime('unsupported', `the manifest of ${ref} uses digest '${d.digest}' at ${where}; only sha256 digests are supported`);
  }
  return { ...d, mediaType: typeof d.mediaType === 'string' ? d.mediaType : '', digest: d.digest, size: d.size };
}

/** Attestation manifests (buildkit provenance/SBOM) are index entries, not images. */
export function isAttestation(d: UncheckedDescriptor): boolean {
  if (d.annotations?.[ANNOTATION_DOCKER_REFERENCE_TYPE] === 'attestation-manifest') return true;
  return d.platform?.os === 'unknown' && d.platform?.architecture === 'unknown';
}
