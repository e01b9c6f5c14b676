import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDockerEngine } from '../../src/engines/docker/index.js';
import { Unpinner } from '../../src/engines/docker/unpin.js';
import { parseArch } from '../../src/platform.js';
import { startDockerd, type TestDockerd } from '../harness/dockerd.js';
import { pushFixtureSet, standardFixtureSpecs, type FixtureSet } from '../harness/fixtures.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

/** A removal the test finishes by hand, so the order and overlap of the daemon's deletions are visible. */
function fakeDaemon() {
  const log: string[] = [];
  const pending = new Map<string, () => void>();
  let running = 0;
  let most = 0;
  const remove = (tag: string) =>
    new Promise<void>((resolve, reject) => {
      running++;
      most = Math.max(most, running);
      log.push(`start ${tag}`);
      pending.set(tag, () => {
        running--;
        log.push(`end ${tag}`);
        if (tag === 'gone') reject(new Error('404-ish'));
        else resolve();
      });
    });
  const finishOne = async (tag: string) => {
    await new Promise((r) => setImmediate(r));
    const f = pending.get(tag);
    assert.ok(f, `no removal of ${tag} is running (log: ${log.join(', ')})`);
    pending.delete(tag);
    f();
    await new Promise((r) => setImmediate(r));
  };
  return { log, remove, finishOne, most: () => most, idle: () => pending.size === 0 };
}

describe('docker engine: removing the private tags', () => {
  it('removes nothing before every image is pulled, then each saved image, one at a time', async () => {
    const d = fakeDaemon();
    const u = new Unpinner(d.remove);
    u.pinned('a');
    u.pinned('b');
    u.pinned('c');
    u.done('a');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(d.log, [], 'a tag went while an image was still to be pulled (it may share layers)');
    u.allPulled();
    await d.finishOne('a');
    assert.deepEqual(d.log, ['start a', 'end a']);
    u.done('c');
    u.done('b');
    await d.finishOne('c');
    await d.finishOne('b');
    assert.deepEqual(d.log, ['start a', 'end a', 'start c', 'end c', 'start b', 'end b']);
    assert.equal(d.most(), 1, 'two deletions ran at once');
    await u.finish();
    assert.ok(u.seconds() > 0);
  });

  it('finish() removes every tag left (saved or not) and waits for the last deletion; errors are ignored', async () => {
    const d = fakeDaemon();
    const u = new Unpinner(d.remove);
    u.pinned('gone');
    u.pinned('x');
    u.done('gone');
    let finished = false;
    const f = u.finish().then(() => (finished = true));
    await d.finishOne('gone');
    assert.equal(finished, false);
    await d.finishOne('x');
    await f;
    assert.equal(finished, true);
    assert.deepEqual(d.log, ['start gone', 'end gone', 'start x', 'end x']);
    // Nothing is removed twice, and a tag never pinned is never removed.
    u.done('x');
    u.done('never');
    await u.finish();
    assert.ok(d.idle());
    assert.equal(d.log.length, 4);
  });
});

describe('docker engine: a layer two images share is pulled once, and the daemon is left as it was', () => {
  let reg: TestRegistry;
  let fx: FixtureSet;
  let dk: TestDockerd;
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kp-docker-unpin-'));
    reg = await startRegistry({ accessLog: true });
    fx = await pushFixtureSet(reg.url, standardFixtureSpecs());
    dk = await startDockerd({ insecureRegistries: [reg.host], registryMirrors: [reg.url] });
  });
  after(async () => {
    await dk?.stop();
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('one image at a time: cloudcore saved before edgemesh-agent is pulled, their alpine base fetched once', async () => {
    const engine = await createDockerEngine({ host: dk.host });
    const cloudcore = fx.image('kubeedge/cloudcore').platforms.find((p) => p.platform === 'linux/arm64')!;
    const edgemesh = fx.image('kubeedge/edgemesh-agent').platforms.find((p) => p.platform.startsWith('linux/arm64'))!;
    const base = cloudcore.layers[0]!.digest;
    assert.equal(edgemesh.layers[0]!.digest, base, 'the fixture images no longer share their base layer');
    const before = (await reg.served!()).length;
    const notes: string[] = [];
    const progress = { start() {}, bytes() {}, done() {}, note: (item: string, message: string) => notes.push(`${item}: ${message}`) };
    const res = await engine.archive({
      progress,
      images: ['docker.io/kubeedge/cloudcore:v1.22.0', 'docker.io/kubeedge/edgemesh-agent:v1.17.0'],
      platform: parseArch('arm64'),
      outFile: join(work, 'a.tar'),
      cacheDir: join(work, 'cache'),
      mtime: 0,
      concurrency: 1,
    });
    await engine.close();
    assert.deepEqual(res.images.map((i) => i.configDigest), [cloudcore.config.digest, edgemesh.config.digest]);
    const gets = (await reg.served!()).slice(before).filter((q) => q.method === 'GET' && q.path.endsWith(`/blobs/${base}`));
    // Removing cloudcore's tag once it was saved would have deleted the base, and the daemon would fetch it again.
    assert.equal(gets.length, 1, `the shared base layer was fetched ${gets.length} times: ${gets.map((g) => g.path).join(', ')}`);
    assert.doesNotMatch(await dk.must(['images', '-a']), /kubeprepare\.local|cloudcore|edgemesh/, 'the daemon kept what the build pulled');
    // A person sees why the build still waits once every image is saved (once, not per image).
    const removing = notes.filter((n) => /removing this build's 2 private tags one at a time/.test(n));
    assert.equal(removing.length, 1, notes.join('\n'));
    assert.match(removing[0]!, new RegExp(`^Docker daemon at ${dk.host.replace(/[/.]/g, '\\$&')}: `));
  });
});
