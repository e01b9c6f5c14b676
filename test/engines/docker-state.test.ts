import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type AddressInfo } from 'node:net';
import { UserError } from '../../src/errors.js';
import { createDockerEngine, type DockerEngine } from '../../src/engines/docker/index.js';
import { parseArch } from '../../src/platform.js';
import { startDockerd, type TestDockerd } from '../harness/dockerd.js';
import { pushFixtureSet, standardFixtureSpecs, type FixtureSet } from '../harness/fixtures.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

/** The engine leaves the daemon's images, tags and digest references exactly as it found them. */
describe('docker engine and the daemon state', () => {
  let reg: TestRegistry;
  let fx: FixtureSet;
  let dk: TestDockerd;
  let engine: DockerEngine;
  let work: string;
  const CLOUDCORE = 'docker.io/kubeedge/cloudcore:v1.22.0';
  const EDGEMESH = 'docker.io/kubeedge/edgemesh-agent:v1.17.0';
  const PAUSE = 'docker.io/rancher/mirrored-pause:3.6';

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kp-docker-state-'));
    reg = await startRegistry();
    fx = await pushFixtureSet(reg.url, standardFixtureSpecs());
    dk = await startDockerd({ insecureRegistries: [reg.host], registryMirrors: [reg.url] });
    engine = await createDockerEngine({ host: dk.host });
  });
  after(async () => {
    await engine?.close();
    await dk?.stop();
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const must = (args: string[]) => dk.must(args);
  /** Every image with its tags and digest references, as the user sees them. */
  async function state(): Promise<string> {
    const ids = (await must(['images', '-a', '-q', '--no-trunc'])).split('\n').filter(Boolean);
    const rows: string[] = [];
    for (const id of [...new Set(ids)]) {
      const [info] = JSON.parse(await must(['image', 'inspect', id])) as { Id: string; RepoTags: string[]; RepoDigests: string[] }[];
      rows.push(`${info!.Id} tags=${[...info!.RepoTags].sort().join(',')} digests=${[...info!.RepoDigests].sort().join(',')}`);
    }
    return rows.sort().join('\n');
  }
  const idOf = (ref: string) => dk.idOf(ref);
  const build = (images: string[], arch: string, name: string, pullPolicy?: Record<string, 'always' | 'never'>) =>
    engine.archive({ images, platform: parseArch(arch), outFile: join(work, `${name}.tar`), cacheDir: join(work, 'cache'), mtime: 0, ...(pullPolicy ? { pullPolicy } : {}) });
  const fixtureConfig = (repo: string, platform: string) => fx.image(repo).platforms.find((p) => p.platform === platform)!.config.digest;

  it("keeps the user's tags where they point (another arch, another image) and removes its temp tags", async () => {
    // The user's own state: cloudcore pulled for amd64, and a tag edgemesh-agent:v1.17.0 on the pause image.
    await must(['pull', '-q', '--platform', 'linux/amd64', CLOUDCORE]);
    await must(['pull', '-q', '--platform', 'linux/amd64', PAUSE]);
    await must(['tag', PAUSE, EDGEMESH]);
    const userCloudcore = await idOf(CLOUDCORE);
    const userPause = await idOf(PAUSE);
    assert.equal(userCloudcore, fixtureConfig('kubeedge/cloudcore', 'linux/amd64'));
    const before = await state();

    const res = await build([CLOUDCORE, EDGEMESH, PAUSE], 'arm64', 'arm64');
    assert.deepEqual(
      res.images.map((i) => [i.ref, i.configDigest, i.platform.architecture]),
      [
        [CLOUDCORE, fixtureConfig('kubeedge/cloudcore', 'linux/arm64'), 'arm64'],
        [EDGEMESH, fixtureConfig('kubeedge/edgemesh-agent', 'linux/arm64'), 'arm64'],
        [PAUSE, fixtureConfig('rancher/mirrored-pause', 'linux/arm64'), 'arm64'],
      ],
    );
    assert.equal(await idOf(CLOUDCORE), userCloudcore, 'cloudcore:v1.22.0 no longer points at the user’s amd64 image');
    assert.equal(await idOf(EDGEMESH), userPause, 'the user’s edgemesh-agent tag was moved');
    assert.equal(await state(), before, 'the daemon state changed');
    assert.doesNotMatch(await must(['images', '-a']), /kubeprepare\.local/);
    // The removal of the private tags is timed on its own (the bench reports it beside pull and save).
    assert.ok(res.timings.unpin > 0 && res.timings.unpin < res.timings.total, `unpin ${res.timings.unpin} s of ${res.timings.total} s`);

    // The same for amd64, where the pulled cloudcore IS the user's image.
    const amd = await build([CLOUDCORE, EDGEMESH], 'amd64', 'amd64');
    assert.equal(amd.images[0]!.configDigest, userCloudcore);
    assert.equal(amd.images[1]!.configDigest, fixtureConfig('kubeedge/edgemesh-agent', 'linux/amd64'));
    assert.equal(await state(), before, 'the daemon state changed (amd64)');
  });

  it('pull: never archives an image that exists only in the daemon, for its architecture only', async () => {
    const local = 'docker.io/local/only-here:1';
    await must(['tag', CLOUDCORE, local]);
    const before = await state();
    const res = await build([local], 'amd64', 'never', { [local]: 'never' });
    assert.equal(res.images[0]!.configDigest, await idOf(local));
    // Short form of the reference works as the key too.
    const res2 = await build(['local/only-here:1'], 'amd64', 'never2', { 'local/only-here:1': 'never' });
    assert.equal(res2.sha256, res.sha256);
    await assert.rejects(build([local], 'arm64', 'never-arm', { [local]: 'never' }), (e: unknown) => e instanceof UserError && e.code === 'platform' && /local\/only-here:1/.test(e.message) && /is linux\/amd64 .*not linux\/arm64/.test(e.message));
    await assert.rejects(build(['docker.io/local/absent:1'], 'amd64', 'never-absent', { 'docker.io/local/absent:1': 'never' }), (e: unknown) => e instanceof UserError && e.code === 'not-found' && /docker\.io\/local\/absent:1 is not in the Docker daemon/.test(e.message));
    assert.equal(await state(), before);
    await must(['rmi', local]);
  });

  it('a digest-pinned ref: pulled and its digest reference removed again; never re-points an existing one', async () => {
    const idx = fx.image('rancher/mirrored-pause').top.digest;
    const pinned = `docker.io/rancher/mirrored-pause@${idx}`;
    // The user's pause (amd64) was pulled by tag, so the daemon holds the index digest reference for amd64.
    const before = await state();
    assert.match(before, new RegExp(`rancher/mirrored-pause@${idx}`));
    await assert.rejects(build([pinned], 'arm64', 'pinned-arm'), (e: unknown) => e instanceof UserError && e.code === 'platform' && /Docker cannot undo/.test(e.message) && e.message.includes(pinned));
    assert.equal(await state(), before);
    // For the platform it already has, the existing image is used as is.
    const ok = await build([pinned], 'amd64', 'pinned-amd');
    assert.equal(ok.images[0]!.configDigest, fixtureConfig('rancher/mirrored-pause', 'linux/amd64'));
    assert.equal(await state(), before);
    // Without it in the daemon: pulled by digest, digest reference removed afterwards.
    await must(['rmi', PAUSE, 'docker.io/kubeedge/edgemesh-agent:v1.17.0']);
    const clean = await state();
    const arm = await build([pinned], 'arm64', 'pinned-arm2');
    assert.equal(arm.images[0]!.configDigest, fixtureConfig('rancher/mirrored-pause', 'linux/arm64'));
    assert.equal(await state(), clean);
  });

  it('reaches the daemon at a tcp:// address too (DOCKER_HOST=tcp://host:port)', async () => {
    // A plain TCP forwarder to the daemon's socket stands for a daemon listening on TCP
    // (dockerd itself delays TCP without TLS, which would only slow the test).
    const sock = dk.host.replace(/^unix:\/\//, '');
    const server = createServer((c) => {
      const u = connect(sock);
      c.pipe(u).pipe(c);
      c.on('error', () => u.destroy());
      u.on('error', () => c.destroy());
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as AddressInfo).port;
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = `tcp://127.0.0.1:${port}`;
    try {
      const viaTcp = await createDockerEngine();
      try {
        const before = await state();
        const r = await viaTcp.archive({ images: [PAUSE], platform: parseArch('arm64'), outFile: join(work, 'tcp.tar'), cacheDir: join(work, 'cache-tcp'), mtime: 0 });
        assert.equal(r.images[0]!.configDigest, fixtureConfig('rancher/mirrored-pause', 'linux/arm64'));
        assert.equal(await state(), before);
      } finally {
        await viaTcp.close();
      }
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
      await new Promise((res) => server.close(res));
    }
  });

  it('keepImages: what was pulled stays under the engine\'s own tags, a rebuild needs no docker save, a moved upstream tag replaces the kept image', async () => {
    const MOVING = 'docker.io/test/moving:1';
    await pushFixtureSet(reg.url, [{ repo: 'test/moving', tag: '1', format: 'oci', platforms: ['linux/amd64', 'linux/arm64'], layers: ['alpine-base', 'moving-v1'] }]);
    const keeper = await createDockerEngine({ host: dk.host, keepImages: true });
    try {
      const before = await state();
      const req = (name: string) => ({ images: [MOVING, EDGEMESH], platform: parseArch('arm64'), outFile: join(work, `${name}.tar`), cacheDir: join(work, 'cache-keep'), mtime: 0 });
      const first = await keeper.archive(req('keep-1'));
      assert.equal(first.saveFormat, 'docker-archive');
      const kept = (await must(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}', 'kubeprepare.local/keep/*'])).split('\n').filter(Boolean);
      assert.equal(kept.length, 2, `two kept tags: ${kept.join('; ')}`);
      assert.ok(kept.every((k) => k.includes(':arm64 ')), kept.join('; '));
      // Apart from the kept images, the user's view is unchanged: no user tag moved or appeared.
      const userView = (x: string) => x.split('\n').filter((l) => !/kubeprepare\.local\/keep\//.test(l)).map((l) => l.replace(/ tags=(\S*)/, (_m, t: string) => ` tags=${t.split(',').filter((x) => x && !x.startsWith('kubeprepare.local/')).join(',')}`)).filter((l) => !/ tags= digests=$/.test(l)).join('\n');
      assert.equal(userView(await state()), userView(before));
      // A rebuild: the daemon finds the image up to date, the cache has its layers: no docker save.
      const again = await keeper.archive(req('keep-2'));
      assert.equal(again.saveFormat, 'cache');
      assert.equal(again.sha256, first.sha256);
      // The upstream tag moves: the new image is kept, the old one is gone from the daemon.
      const oldId = first.images.find((i) => i.ref === MOVING)!.configDigest;
      await pushFixtureSet(reg.url, [{ repo: 'test/moving', tag: '1', format: 'oci', platforms: ['linux/amd64', 'linux/arm64'], layers: ['alpine-base', 'moving-v2'] }]);
      const moved = await keeper.archive(req('keep-3'));
      const newId = moved.images.find((i) => i.ref === MOVING)!.configDigest;
      assert.notEqual(newId, oldId);
      const ids = (await must(['images', '-a', '-q', '--no-trunc'])).split('\n');
      assert.ok(ids.includes(newId) && !ids.includes(oldId), 'the replaced kept image is removed');
    } finally {
      await keeper.close();
    }
  });
});
