import { UserError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';

/**
 * Docker-style image reference normalisation, as `docker pull` and containerd do it:
 *   nginx                      → docker.io/library/nginx:latest
 *   kubeedge/cloudcore:v1.22.0 → docker.io/kubeedge/cloudcore:v1.22.0
 *   registry.k8s.io/pause:3.9  → registry.k8s.io/pause:3.9
 *   host:5000/x@sha256:…       → kept, digest-pinned
 */
export interface ImageRef {
  /** Registry host as written in the canonical name (`docker.io`, `registry.k8s.io`, `127.0.0.1:5000`). */
  registry: string;
  /** Repository path (`library/nginx`). */
  repository: string;
  tag?: string;
  digest?: Digest;
  /** `registry/repository[:tag][@digest]` */
  canonical: string;
}

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;

export class ImageRefError extends Error {}

export function parseImageRef(input: string): ImageRef {
  const s = input.trim();
  if (s.length === 0) throw new ImageRefError('image reference is empty');
  let rest = s;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(d)) throw new ImageRefError(`'${s}': digest must be sha256:<64 hex digits>`);
    digest = d;
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new ImageRefError(`'${s}': tag '${tag}' is not valid (letters, digits, '_', '.', '-'; at most 128)`);
  }
  const parts = rest.split('/');
  let registry = 'docker.io';
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))) {
    registry = first;
    parts.shift();
    if (!DOMAIN.test(registry)) throw new ImageRefError(`'${s}': registry '${registry}' is not a valid host[:port]`);
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = 'docker.io';
  if (registry === 'docker.io' && parts.length === 1) parts.unshift('library');
  for (const p of parts) {
    if (!PATH_COMPONENT.test(p)) {
      throw new ImageRefError(`'${s}': repository component '${p}' is not valid (lowercase letters, digits, separators '.', '_', '-')`);
    }
  }
  const repository = parts.join('/');
  if (!tag && !digest) tag = 'latest';
  const canonical = `${registry}/${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
  return { registry, repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}), canonical };
}

export function normalizeImageRef(input: string): string {
  return parseImageRef(input).canonical;
}

/** The reference a registry is asked for: the digest when pinned, else the tag. */
export function refReference(ref: ImageRef): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

/**
 * Parses the references an engine or command is asked for: each one normalised, duplicates (by canonical
 * name) dropped in order, and a bad one reported as a UserError. Keeps what was written (`input`) beside
 * the parsed reference, for callers that key per-image settings by it.
 */
export function parseImageRefs(images: string[]): { input: string; ref: ImageRef }[] {
  if (images.length === 0) throw new UserError('no images requested', { code: 'usage', hint: 'list at least one image' });
  const out: { input: string; ref: ImageRef }[] = [];
  const seen = new Set<string>();
  for (const input of images) {
    let ref: ImageRef;
    try {
      ref = parseImageRef(input);
    } catch (e) {
      if (e instanceof ImageRefError) throw new UserError(`invalid image reference: ${e.message}`, { code: 'input', hint: 'use [registry/]repository[:tag][@sha256:…]', cause: e });
      throw e;
    }
    if (!seen.has(ref.canonical)) {
      seen.add(ref.canonical);
      out.push({ input, ref });
    }
  }
  return out;
}
