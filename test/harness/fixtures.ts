import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Header as TarHeader } from 'tar';

/**
 * Small, deterministic multi-arch fixture images (a few KB per layer), built in memory and pushed to a
 * registry with the distribution HTTP API. Layers with the same key and architecture are identical
 * across images (shared blobs). Both OCI (index + manifest) and Docker (manifest list + schema 2)
 * formats, optional buildkit-style attestation entries, and single-platform images without an index.
 */
export type FixturePlatform =
  | 'linux/amd64'
  | 'linux/arm64'
  | 'linux/arm64/v8'
  | 'linux/arm'
  | 'linux/arm/v7'
  | 'linux/arm/v6'
  | 'linux/arm/v5'
  | 'linux/arm/v8'
  | 'linux/386'
  | 'linux/ppc64le'
  | 'linux/s390x'
  | 'linux/riscv64'
  | 'linux/mips64le';

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
  /**
   * Mislabelled images: the binaries of the layers for a platform (key) are ELF files of another
   * platform's machine (value), e.g. `{ 'linux/arm64': 'linux/amd64' }` ships x86-64 binaries as arm64.
   */
  elfOf?: Partial<Record<FixturePlatform, FixturePlatform>>;
  /** The config's Entrypoint (default: `/bin/<last layer key>`, a symlink to the layer's ELF binary). */
  entrypoint?: string[];
  /** The config's Cmd (default none). */
  cmd?: string[];
  /** Size of each layer's binary in KiB (default 4; random, so the layer is about as big gzipped). */
  layerKb?: number;
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

const layerCache = new Map<string, { tar: Buffer; gz: Buffer }>();

/** ELF identification per platform: class (1 = 32-bit, 2 = 64-bit), data (1 = LE, 2 = BE), e_machine. */
const ELF_ID: Record<string, { cls: number; data: number; machine: number }> = {
  amd64: { cls: 2, data: 1, machine: 0x3e },
  arm64: { cls: 2, data: 1, machine: 0xb7 },
  arm: { cls: 1, data: 1, machine: 0x28 },
  '386': { cls: 1, data: 1, machine: 0x03 },
  ppc64le: { cls: 2, data: 1, machine: 0x15 },
  s390x: { cls: 2, data: 2, machine: 0x16 },
  riscv64: { cls: 2, data: 1, machine: 0xf3 },
  mips64le: { cls: 2, data: 1, machine: 0x08 },
};

/** An ELF header (as the real one begins: magic, class, data, version, e_type, e_machine) for `platform`, then `body`. */
export function elfFor(platform: FixturePlatform, body: Buffer): Buffer {
  const arch = platform.split('/')[1]!;
  const id = ELF_ID[arch];
  if (!id) throw new Error(`no ELF id for ${platform}`);
  const h = Buffer.alloc(64);
  h.write('\x7fELF', 0, 'latin1');
  h[4] = id.cls;
  h[5] = id.data;
  h[6] = 1;
  if (id.data === 2) {
    h.writeUInt16BE(2, 16);
    h.writeUInt16BE(id.machine, 18);
  } else {
    h.writeUInt16LE(2, 16);
    h.writeUInt16LE(id.machine, 18);
  }
  return Buffer.concat([h, body]);
}

export type FixtureTarEntry =
  | { path: string; type: 'dir'; mode?: number }
  | { path: string; type: 'file'; data: Buffer | string; mode?: number }
  | { path: string; type: 'symlink' | 'hardlink'; target: string };

/** An uncompressed tar (ustar headers by node-tar's Header, mtime 0, uid/gid 0) of `entries`, in order. */
export function fixtureTar(entries: FixtureTarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.type === 'file' ? (typeof e.data === 'string' ? Buffer.from(e.data, 'utf8') : e.data) : Buffer.alloc(0);
    const header = new TarHeader({
      path: e.path,
      mode: e.type === 'dir' ? (e.mode ?? 0o755) : e.type === 'file' ? (e.mode ?? 0o644) : 0o777,
      size: data.length,
      type: e.type === 'dir' ? 'Directory' : e.type === 'file' ? 'File' : e.type === 'symlink' ? 'SymbolicLink' : 'Link',
      ...(e.type === 'symlink' || e.type === 'hardlink' ? { linkpath: e.target } : {}),
      mtime: new Date(0),
      uid: 0,
      gid: 0,
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    parts.push(block, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/**
 * A layer tar for (key, platform): a directory with an ELF binary for the platform's machine (or for
 * `elfOf`'s, to mislabel), a README and a data file, and `bin/<key>`, a relative symlink to the binary;
 * gzip-compressed.
 */
export async function fixtureLayer(key: string, platform: FixturePlatform, sizeKb = 4, elfOf?: FixturePlatform): Promise<{ tar: Buffer; gz: Buffer }> {
  const k = `${key}|${platform}|${sizeKb}|${elfOf ?? ''}`;
  const hit = layerCache.get(k);
  if (hit) return hit;
  const dir = `opt/${key}`;
  const binName = `bin.${platform.replace(/\//g, '-')}`;
  const tar = fixtureTar([
    { path: `${dir}/`, type: 'dir' },
    { path: `${dir}/README`, type: 'file', data: `fixture layer ${key} for ${platform}\n` },
    { path: `${dir}/${binName}`, type: 'file', data: elfFor(elfOf ?? platform, prng(`${k}/bin`, sizeKb * 1024)), mode: 0o755 },
    // Half text, so the gzip stream is realistic (partly compressible).
    { path: `${dir}/data.txt`, type: 'file', data: `${key} ${platform} `.repeat(Math.ceil((sizeKb * 512) / 20)) },
    { path: 'bin/', type: 'dir' },
    { path: `bin/${key}`, type: 'symlink', target: `../${dir}/${binName}` },
  ]);
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
      const l = await fixtureLayer(key, p, spec.layerKb ?? 4, spec.elfOf?.[p]);
      layers.push(blob(l.gz, oci ? MT.ociLayer : MT.dockerLayer));
      diffIds.push(`sha256:${createHash('sha256').update(l.tar).digest('hex')}`);
    }
    const plat = splitPlatform(p);
    if (plat.architecture === 'arm64' && spec.arm64Variant) plat.variant = 'v8';
    const cfg = {
      architecture: plat.architecture,
      config: {
        Entrypoint: spec.entrypoint ?? [`/bin/${spec.layers[spec.layers.length - 1]}`],
        ...(spec.cmd ? { Cmd: spec.cmd } : {}),
        Env: ['PATH=/usr/local/bin:/usr/bin:/bin'],
        Labels: { 'kubeprepare.test': `${spec.repo}:${spec.tag}` },
      },
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

/**
 * Each image of manifests/versions.yaml with the linux platform set it really publishes upstream, as
 * read from the upstream build sources cited per line (and in docs/upstream.md, "Images: platforms
 * published upstream"). Official-images `Architectures:` names map as arm32v5/v6/v7 → linux/arm/v5/v6/v7,
 * arm64v8 → linux/arm64/v8, i386 → linux/386; buildx `linux/arm` is arm/v7 (containerd Normalize), and an
 * index entry of `docker manifest annotate --arch arm` carries no variant (which containerd also reads as v7).
 */
export const UPSTREAM_PLATFORMS: Record<string, { platforms: FixturePlatform[]; source: string }> = {
  // k3s-io/klipper-helm .github/workflows/release.yml @ v0.9.10-build20251111: amd64 job + matrix arm64, arm/v7
  'rancher/klipper-helm': { platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7'], source: 'k3s-io/klipper-helm .github/workflows/release.yml @ v0.9.10-build20251111' },
  // k3s-io/klipper-lb .github/workflows/release.yml @ v0.4.13: "platforms: linux/amd64,linux/arm64,linux/arm/v7"
  'rancher/klipper-lb': { platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7'], source: 'k3s-io/klipper-lb .github/workflows/release.yml @ v0.4.13' },
  // rancher/local-path-provisioner .github/workflows/build.yml @ v0.0.32: "platforms: linux/amd64,linux/arm64,linux/arm,linux/riscv64"
  'rancher/local-path-provisioner': { platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7', 'linux/riscv64'], source: 'rancher/local-path-provisioner .github/workflows/build.yml @ v0.0.32' },
  // coredns/coredns Makefile.docker @ v1.13.1: "LINUX_ARCH:=amd64 arm arm64 mips64le ppc64le s390x riscv64", mips64le left out of the manifest; mirrored whole by rancher/image-mirror
  'rancher/mirrored-coredns-coredns': { platforms: ['linux/amd64', 'linux/arm/v7', 'linux/arm64', 'linux/ppc64le', 'linux/s390x', 'linux/riscv64'], source: 'coredns/coredns Makefile.docker @ v1.13.1' },
  // docker-library/official-images library/busybox @ 4dc9f446 (last file with 1.36.1): amd64, arm32v5, arm32v7, arm64v8, i386, ppc64le, riscv64, s390x, arm32v6
  'rancher/mirrored-library-busybox': {
    platforms: ['linux/amd64', 'linux/arm/v5', 'linux/arm/v7', 'linux/arm64/v8', 'linux/386', 'linux/ppc64le', 'linux/riscv64', 'linux/s390x', 'linux/arm/v6'],
    source: 'docker-library/official-images library/busybox @ 4dc9f4461aff6cd916d69ce9db046f90003c6730',
  },
  // docker-library/official-images library/traefik @ 2a379b93 (v2.11.24): amd64, arm32v6, arm64v8, ppc64le, riscv64, s390x — no arm/v7
  'rancher/mirrored-library-traefik': {
    platforms: ['linux/amd64', 'linux/arm/v6', 'linux/arm64/v8', 'linux/ppc64le', 'linux/riscv64', 'linux/s390x'],
    source: 'docker-library/official-images library/traefik @ 2a379b93345fb17bd889d028271c2976f4171a67',
  },
  // kubernetes-sigs/metrics-server Makefile @ v0.8.0: "ALL_ARCHITECTURES=amd64 arm arm64 ppc64le s390x", annotated "--arch ${arch}" (no variant)
  'rancher/mirrored-metrics-server': { platforms: ['linux/amd64', 'linux/arm', 'linux/arm64', 'linux/ppc64le', 'linux/s390x'], source: 'kubernetes-sigs/metrics-server Makefile @ v0.8.0' },
  'metrics-server/metrics-server': { platforms: ['linux/amd64', 'linux/arm', 'linux/arm64', 'linux/ppc64le', 'linux/s390x'], source: 'kubernetes-sigs/metrics-server Makefile @ v0.8.0' },
  // NOT verified at 3.6: kubernetes build/pause/Makefile was found only at pause 3.1 ("ALL_ARCH = amd64 arm arm64 ppc64le s390x")
  'rancher/mirrored-pause': { platforms: ['linux/amd64', 'linux/arm', 'linux/arm64', 'linux/ppc64le', 'linux/s390x'], source: 'kubernetes/kubernetes build/pause/Makefile at pause 3.1 only (3.6 not found)' },
  // kubeedge/kubeedge .github/workflows/release.yml @ v1.22.0: "platforms: linux/amd64,linux/arm64,linux/arm/v7" for every published image
  'kubeedge/cloudcore': { platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7'], source: 'kubeedge/kubeedge .github/workflows/release.yml @ v1.22.0' },
  'kubeedge/iptables-manager': { platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7'], source: 'kubeedge/kubeedge .github/workflows/release.yml @ v1.22.0' },
  'kubeedge/controller-manager': { platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7'], source: 'kubeedge/kubeedge .github/workflows/release.yml @ v1.22.0' },
  'kubeedge/admission': { platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7'], source: 'kubeedge/kubeedge .github/workflows/release.yml @ v1.22.0' },
  'kubeedge/installation-package': { platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7'], source: 'kubeedge/kubeedge .github/workflows/release.yml @ v1.22.0' },
  // docker-library/official-images library/eclipse-mosquitto @ 6ddb2091 (last file with "Tags: 1.6.15, 1.6"): amd64, arm32v6, arm64v8, i386, ppc64le, s390x — no arm/v7
  'library/eclipse-mosquitto': {
    platforms: ['linux/amd64', 'linux/arm/v6', 'linux/arm64/v8', 'linux/386', 'linux/ppc64le', 'linux/s390x'],
    source: 'docker-library/official-images library/eclipse-mosquitto @ 6ddb20910b58e826ae612054187d5ed5967e2f7e',
  },
  // NOT found upstream: no build source publishes kubeedge/pause (KubeEdge 1.8 CHANGELOG: "Replaced 'kubeedge/pause' with multi arch image", #3114); the pause set above is assumed
  'kubeedge/pause': { platforms: ['linux/amd64', 'linux/arm', 'linux/arm64', 'linux/ppc64le', 'linux/s390x'], source: 'none found (assumed like pause)' },
  // kubeedge/edgemesh Makefile @ v1.17.0: "PLATFORMS ?= linux/amd64,linux/arm64,linux/arm/v7"
  'kubeedge/edgemesh-agent': { platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7'], source: 'kubeedge/edgemesh Makefile @ v1.17.0' },
};

/** Fixture specs for `refs` (`docker.io/rancher/klipper-lb:v0.4.13`...) with their upstream platform sets. */
export function upstreamFixtureSpecs(refs: string[]): FixtureImageSpec[] {
  return refs.map((ref, i) => {
    const m = /^(?:[^/]+\.[^/]+\/)?(.+):([^:@]+)$/.exec(ref);
    if (!m) throw new Error(`fixture ref ${ref}`);
    const repo = m[1]!;
    const up = UPSTREAM_PLATFORMS[repo];
    if (!up) throw new Error(`no upstream platform set for ${repo} (add it to UPSTREAM_PLATFORMS with its source)`);
    const name = repo.split('/').pop()!;
    return { repo, tag: m[2]!, format: i % 2 === 0 ? 'oci' : 'docker', platforms: up.platforms, layers: ['alpine-base', `${name}-bin`] };
  });
}
