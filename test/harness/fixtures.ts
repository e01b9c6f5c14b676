import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { TarWriter } from '../../src/archive/tar-writer.js';

/**
 * Small, deterministic multi-arch fixture images (a few KB per layer), built in memory and pushed to a
 * registry with the distribution HTTP API. Layers with the same key and architecture are identical
 * across images (shared blobs). Both OCI (index + manifest) and Docker (manifest list + schema 2)
 * formats, optional buildkit-style attestation entries, and single-platform images without an index.
 */
export type FixturePlatform = 'linux/amd64' | 'linux/arm64' | 'linux/arm/v7' | 'linux/arm/v6';

export interface FixtureImageSpec {
  repo: string;
  tag: string;
  format: 'oci' | 'docker';
  platforms: FixturePlatform[];
  /** Layer keys; the same key (and platform) gives the same layer in every image. */
  layers: string[];
  /** Push a single-platform manifest without an index (needs exactly one platform). */
  single?: boolean;
  /** Add an attestation manifest entry (`unknown/unknown`) to the index, as buildkit does. */
  attestation?: boolean;
  /** Label the arm64 entry with variant v8 in the index and config (registries differ here). */
  arm64Variant?: boolean;
}

export interface FixtureBlob {
  digest: string;
  size: number;
  mediaType: string;
  data: Buffer;
}

export interface FixturePlatformImage {
  platform: FixturePlatform;
  manifest: FixtureBlob;
  config: FixtureBlob;
  layers: FixtureBlob[];
  /** Uncompressed layer digests (config rootfs.diff_ids). */
  diffIds: string[];
}

export interface FixtureImage {
  spec: FixtureImageSpec;
  /** The manifest the tag points at (index/list, or the single manifest). */
  top: FixtureBlob;
  platforms: FixturePlatformImage[];
  /** Extra manifests/blobs referenced by the index (attestations). */
  extra: FixtureBlob[];
}

const MT = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
};

function blob(data: Buffer | string, mediaType: string): FixtureBlob {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return { digest: `sha256:${createHash('sha256').update(buf).digest('hex')}`, size: buf.length, mediaType, data: buf };
}

/** Deterministic pseudo-random bytes (sha256 counter mode), incompressible like real binaries. */
function prng(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let off = 0;
  for (let i = 0; off < size; i++) {
    const h = createHash('sha256').update(`${seed}#${i}`).digest();
    off += h.copy(out, off);
  }
  return out;
}

class Collector extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.chunks.push(chunk);
    cb();
  }
}

const layerCache = new Map<string, { tar: Buffer; gz: Buffer }>();

/** A layer tar for (key, platform): a directory and three small files, gzip-compressed. */
export async function fixtureLayer(key: string, platform: FixturePlatform, sizeKb = 4): Promise<{ tar: Buffer; gz: Buffer }> {
  const k = `${key}|${platform}|${sizeKb}`;
  const hit = layerCache.get(k);
  if (hit) return hit;
  const c = new Collector();
  const t = new TarWriter(c, { mtime: 0 });
  const dir = `opt/${key}`;
  await t.addDirectory(dir);
  await t.addBuffer(`${dir}/README`, `fixture layer ${key} for ${platform}\n`);
  await t.addBuffer(`${dir}/bin.${platform.replace(/\//g, '-')}`, prng(`${k}/bin`, sizeKb * 1024), { mode: 0o755 });
  // Half text, so the gzip stream is realistic (partly compressible).
  await t.addBuffer(`${dir}/data.txt`, Buffer.from(`${key} ${platform} `.repeat(Math.ceil((sizeKb * 512) / 20)), 'utf8'));
  await t.finish();
  const tar = Buffer.concat(c.chunks);
  const gz = gzipSync(tar, { level: 6 });
  const v = { tar, gz };
  layerCache.set(k, v);
  return v;
}

function splitPlatform(p: FixturePlatform): { os: string; architecture: string; variant?: string } {
  const [os, architecture, variant] = p.split('/') as [string, string, string | undefined];
  return variant ? { os, architecture, variant } : { os, architecture };
}

export async function buildFixtureImage(spec: FixtureImageSpec): Promise<FixtureImage> {
  const oci = spec.format === 'oci';
  const platforms: FixturePlatformImage[] = [];
  for (const p of spec.platforms) {
    const layers: FixtureBlob[] = [];
    const diffIds: string[] = [];
    for (const key of spec.layers) {
      const l = await fixtureLayer(key, p);
      layers.push(blob(l.gz, oci ? MT.ociLayer : MT.dockerLayer));
      diffIds.push(`sha256:${createHash('sha256').update(l.tar).digest('hex')}`);
    }
    const plat = splitPlatform(p);
    if (plat.architecture === 'arm64' && spec.arm64Variant) plat.variant = 'v8';
    const cfg = {
      architecture: plat.architecture,
      config: { Cmd: ['/bin/true'], Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Labels: { 'kubeprepare.test': `${spec.repo}:${spec.tag}` } },
      created: '2025-01-01T00:00:00Z',
      history: spec.layers.map((k) => ({ created: '2025-01-01T00:00:00Z', created_by: `fixture ${k}` })),
      os: plat.os,
      rootfs: { diff_ids: diffIds, type: 'layers' },
      ...(plat.variant ? { variant: plat.variant } : {}),
    };
    const config = blob(JSON.stringify(cfg), oci ? MT.ociConfig : MT.dockerConfig);
    const man = {
      schemaVersion: 2,
      mediaType: oci ? MT.ociManifest : MT.dockerManifest,
      config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    };
    platforms.push({ platform: p, manifest: blob(JSON.stringify(man, null, 2), man.mediaType), config, layers, diffIds });
  }
  const extra: FixtureBlob[] = [];
  if (spec.single) {
    if (platforms.length !== 1) throw new Error(`${spec.repo}: a single-platform image needs exactly one platform`);
    return { spec, top: platforms[0]!.manifest, platforms, extra };
  }
  const entries: Record<string, unknown>[] = platforms.map((pi) => {
    const plat = splitPlatform(pi.platform);
    if (plat.architecture === 'arm64' && spec.arm64Variant) plat.variant = 'v8';
    return { mediaType: pi.manifest.mediaType, digest: pi.manifest.digest, size: pi.manifest.size, platform: plat };
  });
  if (spec.attestation) {
    // Like buildkit: an OCI manifest with an in-toto layer, platform unknown/unknown, pointing at the first image.
    const statement = blob(JSON.stringify({ _type: 'https://in-toto.io/Statement/v0.1', subject: [{ digest: platforms[0]!.manifest.digest }] }), 'application/vnd.in-toto+json');
    const cfg = blob('{}', MT.ociConfig);
    const man = blob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.ociManifest,
        config: { mediaType: cfg.mediaType, digest: cfg.digest, size: cfg.size },
        layers: [{ mediaType: statement.mediaType, digest: statement.digest, size: statement.size, annotations: { 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2' } }],
      }),
      MT.ociManifest,
    );
    extra.push(statement, cfg, man);
    entries.push({
      mediaType: MT.ociManifest,
      digest: man.digest,
      size: man.size,
      annotations: { 'vnd.docker.reference.digest': platforms[0]!.manifest.digest, 'vnd.docker.reference.type': 'attestation-manifest' },
      platform: { architecture: 'unknown', os: 'unknown' },
    });
  }
  const idx = { schemaVersion: 2, mediaType: oci ? MT.ociIndex : MT.dockerList, manifests: entries };
  return { spec, top: blob(JSON.stringify(idx, null, 2), idx.mediaType), platforms, extra };
}

export interface PushOptions {
  auth?: { username: string; password: string };
}

export interface PushedImage extends FixtureImage {
  /** Reference at the registry itself, e.g. `127.0.0.1:5000/kubeedge/cloudcore:v1.22.0`. */
  localRef: string;
}

export interface FixtureSet {
  registryUrl: string;
  images: PushedImage[];
  /** Every blob pushed (layers, configs, manifests) by digest. */
  blobs: Map<string, FixtureBlob>;
  image(repo: string): PushedImage;
}

/** Builds and pushes a set of fixture images (blobs first, then platform manifests, then the tag). */
export async function pushFixtureSet(registryUrl: string, specs: FixtureImageSpec[], opts: PushOptions = {}): Promise<FixtureSet> {
  const headers: Record<string, string> = {};
  if (opts.auth) headers.authorization = `Basic ${Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64')}`;
  const host = new URL(registryUrl).host;
  const images: PushedImage[] = [];
  const blobs = new Map<string, FixtureBlob>();
  for (const spec of specs) {
    const img = await buildFixtureImage(spec);
    const mans: FixtureBlob[] = [];
    for (const p of img.platforms) {
      for (const b of [p.config, ...p.layers]) {
        await uploadBlob(registryUrl, spec.repo, b, headers);
        blobs.set(b.digest, b);
      }
      mans.push(p.manifest);
    }
    for (const b of img.extra) {
      if (b.mediaType === MT.ociManifest) mans.push(b);
      else await uploadBlob(registryUrl, spec.repo, b, headers);
      blobs.set(b.digest, b);
    }
    for (const m of mans) {
      await putManifest(registryUrl, spec.repo, m.digest, m, headers);
      blobs.set(m.digest, m);
    }
    await putManifest(registryUrl, spec.repo, spec.tag, img.top, headers);
    blobs.set(img.top.digest, img.top);
    images.push({ ...img, localRef: `${host}/${spec.repo}:${spec.tag}` });
  }
  return {
    registryUrl,
    images,
    blobs,
    image(repo: string) {
      const i = images.find((x) => x.spec.repo === repo);
      if (!i) throw new Error(`no fixture image ${repo}`);
      return i;
    },
  };
}

async function uploadBlob(base: string, repo: string, b: FixtureBlob, headers: Record<string, string>): Promise<void> {
  const head = await fetch(`${base}/v2/${repo}/blobs/${b.digest}`, { method: 'HEAD', headers });
  if (head.status === 200) return;
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers });
  await start.arrayBuffer();
  if (start.status !== 202) throw new Error(`upload start for ${repo} failed: HTTP ${start.status}`);
  const loc = new URL(start.headers.get('location') ?? '', base);
  loc.searchParams.set('digest', b.digest);
  const put = await fetch(loc, { method: 'PUT', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: b.data });
  const text = await put.text();
  if (put.status !== 201) throw new Error(`upload of ${b.digest} to ${repo} failed: HTTP ${put.status} ${text}`);
}

async function putManifest(base: string, repo: string, reference: string, m: FixtureBlob, headers: Record<string, string>): Promise<void> {
  const r = await fetch(`${base}/v2/${repo}/manifests/${reference}`, { method: 'PUT', headers: { ...headers, 'content-type': m.mediaType }, body: m.data });
  const text = await r.text();
  if (r.status !== 201) throw new Error(`PUT manifest ${repo}:${reference} failed: HTTP ${r.status} ${text}`);
}

/** A representative set: shared layers, both formats, three platforms, an attestation, an amd64-only image. */
export function standardFixtureSpecs(): FixtureImageSpec[] {
  const all: FixturePlatform[] = ['linux/amd64', 'linux/arm64', 'linux/arm/v7'];
  return [
    { repo: 'kubeedge/cloudcore', tag: 'v1.22.0', format: 'oci', platforms: all, layers: ['alpine-base', 'ke-common', 'cloudcore-bin'], attestation: true },
    { repo: 'kubeedge/edgemesh-agent', tag: 'v1.17.0', format: 'docker', platforms: all, layers: ['alpine-base', 'edgemesh-bin'], arm64Variant: true },
    { repo: 'rancher/mirrored-pause', tag: '3.6', format: 'docker', platforms: all, layers: ['pause'] },
    { repo: 'library/amd64only', tag: '1.0', format: 'docker', platforms: ['linux/amd64'], layers: ['alpine-base', 'amd64only-bin'], single: true },
  ];
}
