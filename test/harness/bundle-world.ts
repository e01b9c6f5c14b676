import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startRegistry, type TestRegistry } from './registry.js';
import { pushFixtureSet, type FixtureImageSpec, type FixturePlatform } from './fixtures.js';
import { startFileServer, type FileServer } from './file-server.js';
import { captureIo } from './io.js';
import { runCli } from '../../src/cli.js';

/**
 * A small world to build real bundles in: a local Distribution registry with multi-arch fixture images
 * (docker.io and registry.k8s.io mapped to it through registries.yaml), a local HTTP server standing in
 * for GitHub releases, and a versions manifest pointing at both. Used by the end-to-end build tests and
 * the verify/inspect/verify.sh tests.
 */
export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
export const sha512 = (b: Buffer | string) => createHash('sha512').update(b).digest('hex');
const ALL: FixturePlatform[] = ['linux/amd64', 'linux/arm64', 'linux/arm/v7'];

const SPECS: FixtureImageSpec[] = [
  { repo: 'rancher/mirrored-pause', tag: '3.6', format: 'docker', platforms: ALL, layers: ['pause'] },
  { repo: 'kubeedge/cloudcore', tag: 'v1.22.0', format: 'oci', platforms: ALL, layers: ['alpine-base', 'ke-common', 'cloudcore-bin'], attestation: true },
  { repo: 'kubeedge/iptables-manager', tag: 'v1.22.0', format: 'oci', platforms: ALL, layers: ['alpine-base', 'iptm-bin'] },
  { repo: 'kubeedge/edgemesh-agent', tag: 'v1.17.0', format: 'docker', platforms: ALL, layers: ['alpine-base', 'edgemesh-bin'], arm64Variant: true },
  { repo: 'metrics-server/metrics-server', tag: 'v0.8.0', format: 'oci', platforms: ALL, layers: ['distroless', 'ms-bin'] },
  { repo: 'kubeedge/installation-package', tag: 'v1.22.0', format: 'oci', platforms: ALL, layers: ['alpine-base', 'edgecore-bin'] },
  { repo: 'kubeedge/pause', tag: '3.6', format: 'docker', platforms: ALL, layers: ['pause'] },
  // What K3s runs with the components the cloud installer leaves on (src/bundle/needs.ts K3S_IMAGES):
  // the build refuses a cloud bundle without them.
  { repo: 'rancher/klipper-helm', tag: 'v0.9.10-build20251111', format: 'docker', platforms: ALL, layers: ['alpine-base', 'klipper-helm-bin'] },
  { repo: 'rancher/klipper-lb', tag: 'v0.4.13', format: 'docker', platforms: ALL, layers: ['alpine-base', 'klipper-lb-bin'] },
  { repo: 'rancher/local-path-provisioner', tag: 'v0.0.32', format: 'docker', platforms: ALL, layers: ['alpine-base', 'local-path-bin'] },
  { repo: 'rancher/mirrored-coredns-coredns', tag: '1.13.1', format: 'docker', platforms: ALL, layers: ['distroless', 'coredns-bin'] },
  { repo: 'rancher/mirrored-library-busybox', tag: '1.36.1', format: 'docker', platforms: ALL, layers: ['busybox-bin'] },
  { repo: 'rancher/mirrored-library-traefik', tag: '2.11.24', format: 'docker', platforms: ALL, layers: ['alpine-base', 'traefik-bin'] },
];

/** A minimal ELF header (64-bit little-endian) for `machine` (0xb7 aarch64, 0x3e x86-64), padded. */
export function fakeElf(machine: number, body: string): Buffer {
  const h = Buffer.alloc(64);
  h.write('\x7fELF', 0, 'latin1');
  h[4] = 2; // 64-bit
  h[5] = 1; // little-endian
  h[6] = 1;
  h.writeUInt16LE(2, 16); // ET_EXEC
  h.writeUInt16LE(machine, 18);
  return Buffer.concat([h, Buffer.from(body.repeat(200))]);
}

async function tgz(dir: string, top: string, members: Record<string, string>): Promise<Buffer> {
  for (const [p, c] of Object.entries(members)) {
    await mkdir(join(dir, top, p, '..'), { recursive: true });
    await writeFile(join(dir, top, p), c);
  }
  execFileSync('tar', ['czf', join(dir, `${top}.tgz`), '-C', dir, top]);
  return readFile(join(dir, `${top}.tgz`));
}

export interface BundleWorld {
  work: string;
  manifestPath: string;
  registry: TestRegistry;
  /** The release server: its `files` map can be edited and faults injected. */
  files: FileServer;
  /** Runs the CLI in-process (`--manifest` is appended for build/plan/render/images). */
  run(args: string[]): Promise<{ code: number; out: string; err: string }>;
  /** Runs `build --arch arm64` into `out` (shared cache); returns the tarball paths by side. */
  build(out: string, extra?: string[]): Promise<{ cloud: string; edge: string; dir: string }>;
  stop(): Promise<void>;
}

export const CLOUD = 'kubeprepare-cloud-v1.22.0-linux-arm64';
export const EDGE = 'kubeprepare-edge-v1.22.0-linux-arm64';

/** An image entry of a component in the world's versions manifest (as versions.yaml writes it). */
export type WorldImage = string | { ref: string; role: string };
export type WorldImages = Record<'k3s' | 'kubeedge' | 'edgemesh' | 'metricsServer', { cloud?: WorldImage[]; edge?: WorldImage[] }>;

const DEFAULT_IMAGES: WorldImages = {
  k3s: {
    cloud: [
      'rancher/klipper-helm:v0.9.10-build20251111',
      'rancher/klipper-lb:v0.4.13',
      'rancher/local-path-provisioner:v0.0.32',
      'rancher/mirrored-coredns-coredns:1.13.1',
      'rancher/mirrored-library-busybox:1.36.1',
      'rancher/mirrored-library-traefik:2.11.24',
      'rancher/mirrored-pause:3.6',
    ],
  },
  kubeedge: {
    cloud: [{ ref: 'kubeedge/cloudcore:v1.22.0', role: 'cloudcore' }, { ref: 'kubeedge/iptables-manager:v1.22.0', role: 'iptablesManager' }],
    edge: [{ ref: 'kubeedge/installation-package:v1.22.0', role: 'installationPackage' }, { ref: 'kubeedge/pause:3.6', role: 'pause' }],
  },
  edgemesh: { cloud: [{ ref: 'kubeedge/edgemesh-agent:v1.17.0', role: 'edgemeshAgent' }], edge: [{ ref: 'kubeedge/edgemesh-agent:v1.17.0', role: 'edgemeshAgent' }] },
  metricsServer: { cloud: [{ ref: 'registry.k8s.io/metrics-server/metrics-server:v0.8.0', role: 'metricsServer' }] },
};

export interface BundleWorldOptions {
  /** Fixture images pushed to the registry (default: the small set above, three platforms each). */
  specs?: FixtureImageSpec[];
  /** The images of each component in the world's manifest (default: the small set above). */
  images?: WorldImages;
  /** KubeEdge's version in the world's manifest and release server (default v1.22.0, as the image set above). */
  kubeedgeVersion?: string;
  /** The registry keeps its access log (TestRegistry.served): what it served, counted without a proxy in between. */
  registryAccessLog?: boolean;
}

/** Release-server files for the binaries of one arch (k3s, keadm, containerd, runc), with their checksum files. */
async function releaseFiles(src: string, arch: 'amd64' | 'arm64' | 'arm', ke: string): Promise<{ files: Record<string, Buffer>; runc: [string, Buffer] }> {
  const machine = { amd64: 0x3e, arm64: 0xb7, arm: 0x28 }[arch];
  const k3sName = { amd64: 'k3s', arm64: 'k3s-arm64', arm: 'k3s-armhf' }[arch];
  const keadm = await tgz(join(src, arch), `keadm-${ke}-linux-${arch}`, { 'keadm/keadm': `#!/bin/sh\necho keadm ${arch}\n`, version: `${ke}\n` });
  const k3s = fakeElf(machine, `k3s ${arch} binary\n`);
  const runc = fakeElf(machine, `runc ${arch}\n`);
  const files: Record<string, Buffer> = {
    [`/gh/k3s-io/k3s/releases/download/v1.31.14+k3s1/${k3sName}`]: k3s,
    [`/gh/k3s-io/k3s/releases/download/v1.31.14+k3s1/sha256sum-${arch}.txt`]: Buffer.from(`${sha256(k3s)}  ${k3sName}\n`),
    [`/gh/kubeedge/kubeedge/releases/download/${ke}/keadm-${ke}-linux-${arch}.tar.gz`]: keadm,
    [`/gh/kubeedge/kubeedge/releases/download/${ke}/checksum_keadm-${ke}-linux-${arch}.tar.gz.txt`]: Buffer.from(`${sha512(keadm)}\n`),
    [`/gh/opencontainers/runc/releases/download/v1.3.3/runc.${arch}`]: runc,
  };
  if (arch !== 'arm') {
    const containerd = await tgz(join(src, arch), 'containerd', { 'bin/containerd': `containerd ${arch}` });
    files[`/gh/containerd/containerd/releases/download/v1.7.29/containerd-1.7.29-linux-${arch}.tar.gz`] = containerd;
    files[`/gh/containerd/containerd/releases/download/v1.7.29/containerd-1.7.29-linux-${arch}.tar.gz.sha256sum`] = Buffer.from(`${sha256(containerd)}  containerd-1.7.29-linux-${arch}.tar.gz\n`);
  }
  return { files, runc: [`runc.${arch}`, runc] };
}

/**
 * The world, by default with the small fixture set; with `specs`/`images` (e.g. every image of
 * manifests/versions.yaml with its upstream platform set, see fixtures.ts upstreamFixtureSpecs) for
 * builds of other image lists. The release server has binaries for amd64, arm64 and arm.
 */
export async function startBundleWorldWith(opts: BundleWorldOptions): Promise<BundleWorld> {
  return startWorld(opts.specs ?? SPECS, opts.images ?? DEFAULT_IMAGES, opts.kubeedgeVersion, opts.registryAccessLog);
}

export async function startBundleWorld(): Promise<BundleWorld> {
  return startWorld(SPECS, DEFAULT_IMAGES);
}

async function startWorld(specs: FixtureImageSpec[], images: WorldImages, ke = 'v1.22.0', accessLog = false): Promise<BundleWorld> {
  const work = await mkdtemp(join(tmpdir(), 'kp-verify-'));
  const registry: TestRegistry = await startRegistry({ accessLog });
  let files: FileServer | undefined;
  const installSh = Buffer.from('#!/bin/sh\necho k3s install\n');
  // The list of one side, written as manifests/versions.yaml writes it (block lists for k3s and kubeedge,
  // flow lists for the others), so that tests can edit the manifest text line by line.
  const item = (i: WorldImage) => (typeof i === 'string' ? i : `{ ref: ${i.ref}, role: ${i.role} }`);
  const img = (c: keyof WorldImages, side: 'cloud' | 'edge') => {
    const list = images[c][side];
    if (!list) return side === 'edge' && !images[c].cloud ? ' {}' : '';
    if (c === 'k3s' || c === 'kubeedge') return `\n      ${side}:${list.map((i) => `\n        - ${item(i)}`).join('')}`;
    return `\n      ${side}: [${list.map(item).join(', ')}]`;
  };
  try {
    await pushFixtureSet(registry.url, specs);
    const src = join(work, 'src');
    const served: Record<string, Buffer> = { '/raw/install.sh': installSh };
    const runcSums: string[] = [];
    for (const arch of ['amd64', 'arm64', 'arm'] as const) {
      const r = await releaseFiles(src, arch, ke);
      Object.assign(served, r.files);
      runcSums.push(`${sha256(r.runc[1])}  ${r.runc[0]}`);
    }
    served['/gh/opencontainers/runc/releases/download/v1.3.3/runc.sha256sum'] = Buffer.from(`${runcSums.join('\n')}\n`);
    files = await startFileServer(served);
  } catch (e) {
    await files?.stop();
    await registry.stop();
    throw e;
  }
  await writeFile(join(work, 'registries.yaml'), `mirrors:\n  docker.io:\n    endpoint: ["${registry.url}"]\n  registry.k8s.io:\n    endpoint: ["${registry.url}"]\n`);
  const manifestPath = join(work, 'versions.yaml');
  await writeFile(
    manifestPath,
    `schemaVersion: 1
sourceDateEpoch: 1764547200
registries: registries.yaml
binaryMirrors:
  - { from: 'https://github.com/', to: '${files.url}/gh/' }
  - { from: 'https://raw.githubusercontent.com/k3s-io/k3s/abc/', to: '${files.url}/raw/' }
components:
  k3s:
    version: v1.31.14+k3s1
    images:${img('k3s', 'cloud')}${img('k3s', 'edge')}
    binaries:
      - name: k3s
        role: k3s
        sides: [cloud]
        url: https://github.com/k3s-io/k3s/releases/download/{version}/k3s{suffix}
        archVars: { suffix: { amd64: '', arm64: '-arm64', arm: '-armhf' } }
        dest: bin/k3s
        sha256: { checksumUrl: 'https://github.com/k3s-io/k3s/releases/download/{version}/sha256sum-{arch}.txt' }
      - name: k3s-install.sh
        role: k3sInstallScript
        sides: [cloud]
        url: https://raw.githubusercontent.com/k3s-io/k3s/abc/install.sh
        dest: scripts/k3s-install.sh
        mode: '0755'
        sha256: { pinned: { any: ${sha256(installSh)} } }
  kubeedge:
    version: ${ke}
    images:${img('kubeedge', 'cloud')}${img('kubeedge', 'edge')}
    binaries:
      - name: keadm
        role: keadm
        sides: [cloud, edge]
        url: https://github.com/kubeedge/kubeedge/releases/download/{version}/keadm-{version}-linux-{arch}.tar.gz
        extract: keadm-{version}-linux-{arch}/keadm/keadm
        dest: bin/keadm
        sha256:
          checksumUrl: https://github.com/kubeedge/kubeedge/releases/download/{version}/checksum_keadm-{version}-linux-{arch}.tar.gz.txt
          algorithm: sha512
  edgemesh:
    version: v1.17.0
    images:${img('edgemesh', 'cloud')}${img('edgemesh', 'edge')}
  metricsServer:
    version: v0.8.0
    images:${img('metricsServer', 'cloud')}${img('metricsServer', 'edge')}
  containerd:
    version: v1.7.29
    binaries:
      - name: containerd
        role: containerdTarball
        sides: [edge]
        arches: [amd64, arm64]
        url: https://github.com/containerd/containerd/releases/download/{version}/containerd-{versionBare}-linux-{arch}.tar.gz
        dest: runtime/containerd-{versionBare}-linux-{arch}.tar.gz
        sha256: { checksumUrl: 'https://github.com/containerd/containerd/releases/download/{version}/containerd-{versionBare}-linux-{arch}.tar.gz.sha256sum' }
  runc:
    version: v1.3.3
    binaries:
      - name: runc
        role: runc
        sides: [edge]
        url: https://github.com/opencontainers/runc/releases/download/{version}/runc.{arch}
        dest: runtime/runc
        sha256: { checksumUrl: 'https://github.com/opencontainers/runc/releases/download/{version}/runc.sha256sum' }
`,
  );
  process.env.KP_OFFLINE = '1';
  const cache = join(work, 'cache');
  const fs = files;
  return {
    work,
    manifestPath,
    registry,
    files: fs,
    async run(args) {
      const io = captureIo();
      const code = await runCli([...args, '--manifest', manifestPath], io);
      return { code, out: io.outText(), err: io.errText() };
    },
    async build(out, extra = []) {
      const io = captureIo();
      const code = await runCli(['build', '--arch', 'arm64', '--manifest', manifestPath, '--out', out, '--cache-dir', cache, ...extra], io);
      if (code !== 0) throw new Error(`build failed (${code}): ${io.errText()}`);
      const ext = extra.includes('gzip') ? '.tar.gz' : extra.includes('zstd') ? '.tar.zst' : '.tar';
      return { cloud: join(out, `${CLOUD}${ext}`), edge: join(out, `${EDGE}${ext}`), dir: out };
    },
    async stop() {
      await fs.stop();
      await registry.stop();
      await rm(work, { recursive: true, force: true });
    },
  };
}

