import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRegistryEngine, parseRegistriesConfig } from '../../src/engines/registry/index.js';
import type { ImageArchiveResult } from '../../src/engines/types.js';
import { parseArch } from '../../src/platform.js';
import { assertImagesComplete, importArchive, listImages, startContainerd, type TestContainerd } from '../harness/containerd.js';
import { startDockerd, type TestDockerd } from '../harness/dockerd.js';
import { pushFixtureSet, standardFixtureSpecs, type FixtureSet } from '../harness/fixtures.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

const IMAGES = ['docker.io/kubeedge/cloudcore:v1.22.0', 'docker.io/kubeedge/edgemesh-agent:v1.17.0', 'docker.io/rancher/mirrored-pause:3.6'];
const REPOS = ['kubeedge/cloudcore', 'kubeedge/edgemesh-agent', 'rancher/mirrored-pause'];

describe('the images archive loads into real runtimes', () => {
  let reg: TestRegistry;
  let fx: FixtureSet;
  let work: string;
  const archives = new Map<string, ImageArchiveResult>();

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kp-import-'));
    reg = await startRegistry();
    fx = await pushFixtureSet(reg.url, standardFixtureSpecs());
    const registries = parseRegistriesConfig(`mirrors:\n  docker.io:\n    endpoint: ["${reg.url}"]\n`);
    const engine = createRegistryEngine({ registries, offline: true });
    try {
      for (const arch of ['arm64', 'amd64', 'arm']) {
        archives.set(
          arch,
          await engine.archive({ images: IMAGES, platform: parseArch(arch), outFile: join(work, `images-${arch}.tar`), cacheDir: join(work, 'cache'), mtime: 1_700_000_000 }),
        );
      }
    } finally {
      await engine.close();
    }
  });

  after(async () => {
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  describe('containerd (ctr -n k8s.io images import)', () => {
    let ctd: TestContainerd;
    before(async () => {
      ctd = await startContainerd();
    });
    after(async () => {
      await ctd?.stop();
    });

    for (const [arch, platform] of [
      ['arm64', 'linux/arm64'],
      ['arm', 'linux/arm/v7'],
    ] as const) {
      it(`imports the ${platform} archive on an amd64 host with canonical names and the right platform`, async () => {
        const file = archives.get(arch)!.file;
        await importArchive(ctd, file, platform);
        const ls = await listImages(ctd);
        const rows = ls.rows;
        for (const [i, ref] of IMAGES.entries()) {
          const row = rows.find((r) => r[0] === ref);
          assert.ok(row, `${ref} not listed by ctr images ls:\n${ls.stdout}`);
          const want = fx.image(REPOS[i]!).platforms.find((p) => p.platform === platform)!;
          assert.equal(row[2], want.manifest.digest, `${ref}: wrong manifest`);
          assert.ok(row.includes(platform), `${ref}: platform column is not ${platform}: ${row.join(' ')}`);
        }
        // The content is complete: every blob of each image is present.
        await assertImagesComplete(ctd, IMAGES);
        await ctd.ctr(['-n', 'k8s.io', 'images', 'rm', ...IMAGES]);
      });
    }
  });

  describe('dockerd (docker load)', () => {
    let dk: TestDockerd;
    before(async () => {
      dk = await startDockerd();
    });
    after(async () => {
      await dk?.stop();
    });

    for (const [arch, archName, variant] of [
      ['arm64', 'arm64', ''],
      ['amd64', 'amd64', ''],
      ['arm', 'arm', 'v7'],
    ] as const) {
      it(`docker load of the ${arch} archive gives the ${arch} images with their config digests as IDs`, async () => {
        const res = archives.get(arch)!;
        const load = await dk.docker(['load', '-i', res.file]);
        assert.equal(load.code, 0, `docker load failed: ${load.stderr}${load.stdout}`);
        for (const [i, ref] of IMAGES.entries()) {
          const insp = await dk.docker(['image', 'inspect', ref]);
          assert.equal(insp.code, 0, `docker image inspect ${ref}: ${insp.stderr}`);
          const [info] = JSON.parse(insp.stdout) as { Id: string; Os: string; Architecture: string; Variant?: string; RepoTags: string[] }[];
          assert.ok(info);
          assert.equal(info.Id, res.images[i]!.configDigest);
          assert.equal(info.Os, 'linux');
          assert.equal(info.Architecture, archName);
          // What the image's config says (edgemesh labels arm64 as v8, like some real images).
          const cfg = JSON.parse(fx.blobs.get(res.images[i]!.configDigest)!.data.toString('utf8')) as { variant?: string };
          assert.equal(info.Variant ?? '', cfg.variant ?? variant);
          // Docker shows docker.io names in their short form.
          assert.ok(info.RepoTags.includes(ref.replace(/^docker\.io\//, '')), info.RepoTags.join(','));
        }
        const rm1 = await dk.docker(['image', 'rm', ...IMAGES]);
        assert.equal(rm1.code, 0, rm1.stderr);
      });
    }
  });
});
