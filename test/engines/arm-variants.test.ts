import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../src/errors.js';
import { createDockerEngine, type DockerEngine } from '../../src/engines/docker/index.js';
import { createRegistryEngine, parseRegistriesConfig } from '../../src/engines/registry/index.js';
import type { ImageEngine } from '../../src/engines/types.js';
import { parseArch } from '../../src/platform.js';
import type { ProgressSink } from '../../src/progress/sink.js';
import { startDockerd, type TestDockerd } from '../harness/dockerd.js';
import { pushFixtureSet, type FixtureSet } from '../harness/fixtures.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

/**
 * arm bundles take arm/v7, else v6, else v5 (containerd's platforms.Only order), never v8 or another
 * architecture; amd64 and arm64 stay exact. Both engines, against a real registry (and a real dockerd,
 * whose own matcher differs by version: 20.10 answers an arm request without an exact match with the
 * first arm entry of any variant).
 */
describe('arm variant selection (registry and docker engines)', () => {
  let reg: TestRegistry;
  let fx: FixtureSet;
  let dk: TestDockerd;
  let docker: DockerEngine;
  let registry: ImageEngine;
  let work: string;
  // Named at the test registry itself: through a mirror, dockerd would try registry-1.docker.io after a
  // "no matching manifest" from the mirror (a DNS lookup, off loopback).
  let V5V6: string; // index order v5 before v6: v6 must still win
  let V5: string;
  let V8: string; // arm/v8 and arm64 only: nothing for arm/v7
  let V6X: string; // amd64 and arm/v6 (like traefik, mosquitto)

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kp-armvar-'));
    reg = await startRegistry();
    fx = await pushFixtureSet(reg.url, [
      { repo: 'library/v5v6', tag: '1', format: 'oci', platforms: ['linux/amd64', 'linux/arm/v5', 'linux/arm/v6'], layers: ['v5v6-bin'] },
      { repo: 'library/v5only', tag: '1', format: 'docker', platforms: ['linux/arm64', 'linux/arm/v5'], layers: ['v5only-bin'] },
      { repo: 'library/armv8', tag: '1', format: 'oci', platforms: ['linux/arm/v8', 'linux/arm64'], layers: ['armv8-bin'] },
      { repo: 'library/v6x', tag: '1', format: 'docker', platforms: ['linux/amd64', 'linux/arm/v6'], layers: ['v6x-bin'] },
    ]);
    [V5V6, V5, V8, V6X] = ['library/v5v6', 'library/v5only', 'library/armv8', 'library/v6x'].map((r) => fx.image(r).localRef) as [string, string, string, string];
    dk = await startDockerd({ insecureRegistries: [reg.host], registryMirrors: [reg.url] });
    docker = await createDockerEngine({ host: dk.host });
    registry = createRegistryEngine({ offline: true, registries: parseRegistriesConfig(`mirrors:\n  "${reg.host}":\n    endpoint: ["${reg.url}"]\n`), noUpstreamFallback: true });
  });
  after(async () => {
    await docker?.close();
    await registry?.close();
    await dk?.stop();
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const notes: string[] = [];
  const sink: ProgressSink = { start() {}, bytes() {}, done() {}, note: (item, m) => notes.push(`${item}: ${m}`) };
  const config = (repo: string, platform: string) => fx.image(repo).platforms.find((p) => p.platform === platform)!.config.digest;
  let n = 0;
  const archive = (engine: ImageEngine, images: string[], arch: string) =>
    engine.archive({ images, platform: parseArch(arch), outFile: join(work, `${engine.name}-${n++}.tar`), cacheDir: join(work, `cache-${engine.name}`), mtime: 0, progress: sink });

  for (const name of ['registry', 'docker'] as const) {
    const engine = () => (name === 'registry' ? registry : docker);

    it(`${name}: arm takes v6 over v5 (whatever the index order), v5 when it is all there is, and says so per image`, async () => {
      notes.length = 0;
      const res = await archive(engine(), [V5V6, V5, V6X], 'arm');
      assert.deepEqual(
        res.images.map((i) => [i.ref, i.configDigest, i.platform.variant]),
        [
          [V5V6, config('library/v5v6', 'linux/arm/v6'), 'v6'],
          [V5, config('library/v5only', 'linux/arm/v5'), 'v5'],
          [V6X, config('library/v6x', 'linux/arm/v6'), 'v6'],
        ],
      );
      for (const [ref, p] of [[V5V6, 'linux/arm/v6'], [V5, 'linux/arm/v5'], [V6X, 'linux/arm/v6']] as const) {
        assert.ok(notes.some((l) => l.startsWith(`${ref}: `) && l.includes(`taking ${p}`) && l.includes('no linux/arm/v7 image')), `no warning for ${ref}: ${notes.join(' | ')}`);
      }
    });

    it(`${name}: arm/v6 never takes v7 or v8; arm never takes arm/v8 or arm64; arm64 never takes arm`, async () => {
      await assert.rejects(archive(engine(), [V8], 'arm'), (e: unknown) => {
        assert.ok(e instanceof UserError, String(e));
        if (name === 'registry') assert.equal(e.code, 'platform');
        assert.match(e.message, name === 'registry' ? /has no image for linux\/arm\/v7; it has: linux\/arm\/v8, linux\/arm64/ : /armv8:1.*(linux\/arm\/v8|no matching manifest)/s);
        return true;
      });
      await assert.rejects(archive(engine(), [V6X], 'arm64'), (e: unknown) => {
        assert.ok(e instanceof UserError, String(e));
        if (name === 'registry') assert.equal(e.code, 'platform');
        assert.match(e.message, name === 'registry' ? /has no image for linux\/arm64; it has: linux\/amd64, linux\/arm\/v6/ : /v6x:1.*(linux\/arm\/v6|no matching manifest)/s);
        return true;
      });
      // amd64 is exact too (an arm-only index has nothing for it).
      const amd = await archive(engine(), [V6X], 'amd64');
      assert.equal(amd.images[0]!.configDigest, config('library/v6x', 'linux/amd64'));
    });
  }
});
