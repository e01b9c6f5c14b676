import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDockerEngine, type DockerArchiveResult, type DockerEngine } from '../../src/engines/docker/index.js';
import { createRegistryEngine, parseRegistriesConfig } from '../../src/engines/registry/index.js';
import type { ImageArchiveResult } from '../../src/engines/types.js';
import { parseArch } from '../../src/platform.js';
import { extractArchive } from '../harness/archive.js';
import { assertImagesComplete, importArchive, listImages, startContainerd, type TestContainerd } from '../harness/containerd.js';
import { startDockerd, type TestDockerd } from '../harness/dockerd.js';
import { pushFixtureSet, standardFixtureSpecs, type FixtureSet } from '../harness/fixtures.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

/**
 * `--engine docker` end to end: a private dockerd pulls the multi-arch fixtures through a local
 * docker-registry configured as its docker.io mirror; the archives it produces load into a real
 * containerd and a real (separate) dockerd with the requested architecture, and carry the same image IDs
 * as the registry engine's archives for the same refs.
 */
const IMAGES = ['docker.io/kubeedge/cloudcore:v1.22.0', 'docker.io/kubeedge/edgemesh-agent:v1.17.0', 'docker.io/rancher/mirrored-pause:3.6'];
const ARCHES = ['arm64', 'amd64'] as const;

describe('docker engine archives', () => {
  let reg: TestRegistry;
  let fx: FixtureSet;
  let work: string;
  let source: TestDockerd;
  let engine: DockerEngine;
  const docker = new Map<string, DockerArchiveResult>();
  const registry = new Map<string, ImageArchiveResult>();

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kp-docker-import-'));
    reg = await startRegistry();
    fx = await pushFixtureSet(reg.url, standardFixtureSpecs());
    source = await startDockerd({ insecureRegistries: [reg.host], registryMirrors: [reg.url] });
    engine = await createDockerEngine({ host: source.host });
    for (const arch of ARCHES) {
      docker.set(arch, await engine.archive({ images: IMAGES, platform: parseArch(arch), outFile: join(work, `docker-${arch}.tar`), cacheDir: join(work, 'cache'), mtime: 1_700_000_000 }));
    }
    const reng = createRegistryEngine({ registries: parseRegistriesConfig(`mirrors:\n  docker.io:\n    endpoint: ["${reg.url}"]\n`), offline: true });
    try {
      for (const arch of ARCHES) {
        registry.set(arch, await reng.archive({ images: IMAGES, platform: parseArch(arch), outFile: join(work, `registry-${arch}.tar`), cacheDir: join(work, 'rcache'), mtime: 1_700_000_000 }));
      }
    } finally {
      await reng.close();
    }
  });

  after(async () => {
    await engine?.close();
    await source?.stop();
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('gives the same image IDs (config digests) as the registry engine, for the requested architecture', () => {
    for (const arch of ARCHES) {
      const d = docker.get(arch)!;
      const r = registry.get(arch)!;
      assert.deepEqual(
        d.images.map((i) => [i.ref, i.configDigest]),
        r.images.map((i) => [i.ref, i.configDigest]),
        `${arch}: image IDs differ between engines`,
      );
      for (const img of d.images) {
        assert.equal(img.platform.architecture, arch, img.ref);
        // The config the daemon pulled is the fixture's own config for that platform.
        const want = fx.images.find((i) => img.ref.endsWith(`${i.spec.repo}:${i.spec.tag}`))!.platforms.find((p) => p.platform.split('/')[1] === arch)!;
        assert.equal(img.configDigest, want.config.digest, img.ref);
        for (const l of img.layers) assert.equal(l.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
      }
    }
  });

  it('writes the shared archive format: canonical names, gzip layers, every blob once', async () => {
    const res = docker.get('arm64')!;
    const a = await extractArchive(res.file);
    try {
      assert.deepEqual(a.ociLayout, { imageLayoutVersion: '1.0.0' });
      assert.deepEqual(a.index.manifests.map((m) => m.annotations?.['io.containerd.image.name']), IMAGES);
      assert.deepEqual(a.dockerManifest.map((m) => m.RepoTags[0]), IMAGES);
      const blobs = a.entries.filter((e) => e.path.startsWith('blobs/sha256/') && e.type === 'File').map((e) => e.path);
      assert.equal(new Set(blobs).size, blobs.length, 'a blob is stored twice');
      // cloudcore and edgemesh-agent share alpine-base: stored once.
      assert.ok(res.uniqueBlobBytes < res.totalBlobBytes, 'no deduplication happened');
      for (const img of res.images) {
        for (const l of img.layers) {
          const b = await a.readBlob(l.digest);
          assert.equal(b[0], 0x1f);
          assert.equal(b[1], 0x8b);
          assert.equal(b.length, l.size);
        }
      }
      for (const m of a.entries) assert.equal(m.mtime, 1_700_000_000, m.path);
    } finally {
      await rm(a.dir, { recursive: true, force: true });
    }
  });

  it('is reproducible: a warm rebuild and a cold rebuild with an empty cache give the same bytes', async () => {
    const first = docker.get('arm64')!;
    const warm = await engine.archive({ images: IMAGES, platform: parseArch('arm64'), outFile: join(work, 'warm.tar'), cacheDir: join(work, 'cache'), mtime: 1_700_000_000 });
    assert.equal(warm.saveFormat, 'cache', 'the warm build exported images it already had');
    assert.equal(warm.sha256, first.sha256);
    const cold = await engine.archive({ images: IMAGES, platform: parseArch('arm64'), outFile: join(work, 'cold.tar'), cacheDir: join(work, 'cache-2'), mtime: 1_700_000_000 });
    assert.notEqual(cold.saveFormat, 'cache');
    assert.equal(cold.sha256, first.sha256, 'gzip output is not deterministic');
  });

  describe('containerd (ctr -n k8s.io images import)', () => {
    let ctd: TestContainerd;
    before(async () => {
      ctd = await startContainerd();
    });
    after(async () => {
      await ctd?.stop();
    });

    for (const arch of ARCHES) {
      it(`imports the linux/${arch} archive with canonical names, the right platform and complete content`, async () => {
        const res = docker.get(arch)!;
        await importArchive(ctd, res.file, `linux/${arch}`);
        const ls = await listImages(ctd);
        const rows = ls.rows;
        for (const img of res.images) {
          const row = rows.find((r) => r[0] === img.ref);
          assert.ok(row, `${img.ref} not listed by ctr images ls:\n${ls.stdout}`);
          assert.equal(row[2], img.manifestDigest, `${img.ref}: wrong manifest`);
          assert.ok(row.some((c) => c.split(',').some((p) => p.startsWith(`linux/${arch}`))), `${img.ref}: platform column is not linux/${arch}: ${row.join(' ')}`);
        }
        await assertImagesComplete(ctd, IMAGES);
        // The image ID containerd computes from the imported content is the config digest.
        for (const img of res.images) {
          const info = await ctd.ctr(['-n', 'k8s.io', 'content', 'get', img.configDigest]);
          assert.equal(info.code, 0, `config ${img.configDigest} of ${img.ref} not in containerd's content store`);
          assert.equal(JSON.parse(info.stdout).architecture, arch);
        }
        await ctd.ctr(['-n', 'k8s.io', 'images', 'rm', ...IMAGES]);
      });
    }
  });

  describe('dockerd (docker load into another daemon)', () => {
    let dk: TestDockerd;
    before(async () => {
      dk = await startDockerd();
    });
    after(async () => {
      await dk?.stop();
    });

    for (const arch of ARCHES) {
      it(`docker load of the ${arch} archive gives ${arch} images whose IDs are the registry engine's config digests`, async () => {
        const res = docker.get(arch)!;
        const load = await dk.docker(['load', '-i', res.file]);
        assert.equal(load.code, 0, `docker load failed: ${load.stderr}${load.stdout}`);
        for (const [i, ref] of IMAGES.entries()) {
          const insp = await dk.docker(['image', 'inspect', ref]);
          assert.equal(insp.code, 0, `docker image inspect ${ref}: ${insp.stderr}`);
          const [info] = JSON.parse(insp.stdout) as { Id: string; Os: string; Architecture: string; RepoTags: string[] }[];
          assert.ok(info);
          assert.equal(info.Id, registry.get(arch)!.images[i]!.configDigest, `${ref}: image ID differs from the registry engine's`);
          assert.equal(info.Os, 'linux');
          assert.equal(info.Architecture, arch);
          assert.ok(info.RepoTags.includes(ref.replace(/^docker\.io\//, '')), info.RepoTags.join(','));
        }
        const rm1 = await dk.docker(['image', 'rm', ...IMAGES]);
        assert.equal(rm1.code, 0, rm1.stderr);
      });
    }
  });
});
