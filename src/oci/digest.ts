import { createHash } from 'node:crypto';

/**
 * A content digest, `sha256:<64 lowercase hex>` (the only algorithm images here use). A `Digest` is a
 * string checked once, by `parseDigest` / `isDigest` / `sha256Digest`, and branded so that an unchecked
 * string does not pass for one (go-containerregistry's `v1.Hash`, as a string).
 */
export type Digest = string & { readonly __digest: 'sha256' };

/** The one digest pattern; group 1 is the hex part. */
export const DIGEST_RE = /^sha256:([a-f0-9]{64})$/;

export function isDigest(s: unknown): s is Digest {
  return typeof s === 'string' && DIGEST_RE.test(s);
}

/** Checks `s` once and brands it; throws `not a sha256 digest: <s>` (callers with their own wording test `isDigest`). */
export function parseDigest(s: string): Digest {
  if (!isDigest(s)) throw new Error(`not a sha256 digest: ${s}`);
  return s;
}

/** The hex part of a digest; a bare 64-hex string is taken as is. Throws for anything else. */
export function digestHex(digest: string): string {
  const hex = digest.startsWith('sha256:') ? digest.slice(7) : digest;
  if (!isDigest(`sha256:${hex}`)) throw new Error(`not a sha256 digest: ${digest}`);
  return hex;
}

/** The digest of 64 hex digits (an already computed SHA-256). */
export function digestFromHex(hex: string): Digest {
  return parseDigest(`sha256:${hex}`);
}

/** SHA-256 of bytes in memory, as a digest. */
export function sha256Digest(bytes: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
}

/** Path of a blob inside an OCI image layout: `blobs/sha256/<hex>`. */
export function blobPath(digest: string): string {
  return `blobs/sha256/${parseDigest(digest).slice(7)}`;
}

/** The digest a layout path `blobs/sha256/<hex>` stands for, or undefined for any other path. */
export function digestOfBlobPath(path: string): Digest | undefined {
  const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(path);
  return m ? (`sha256:${m[1]}` as Digest) : undefined;
}
