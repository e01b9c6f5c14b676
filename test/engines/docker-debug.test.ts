import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli.js';
import { createDockerEngine } from '../../src/engines/docker/index.js';
import { parseArch } from '../../src/platform.js';
import { setDebug } from '../../src/util/debug.js';
import { startDockerd, type TestDockerd } from '../harness/dockerd.js';
import { pushFixtureSet, type FixtureImageSpec, type FixtureSet } from '../harness/fixtures.js';
import { captureIo } from '../harness/io.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

/**
 * Issue 16 item 4, the docker engine's part of the debug channel: with --verbose each re-tag in the
 * daemon (`tag <id> as <name>`) and each reference removed (`remove reference <name>`, the replaced kept
 * image: `remove <id>, no longer <tag>`) is a line on stderr; without it, none. Each line is checked
 * against what the daemon then holds. A private dockerd pulls from a local docker-registry, its docker.io mirror.
 */
const IMAGE = 'docker.io/test/debug-retag:1';
const spec = (layer: string): FixtureImageSpec => ({ repo: 'test/debug-retag', tag: '1', format: 'oci', platforms: ['linux/amd64', 'linux/arm64'], layers: ['dbg-base', layer] });

describe('docker engine debug lines (issue 16 item 4)', () => {
  let reg: TestRegistry;
  let fx: FixtureSet;
  let dk: TestDockerd;
  let work: string;
  let savedHost: string | undefined;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kp-docker-debug-'));
    reg = await startRegistry();
    fx = await pushFixtureSet(reg.url, [spec('dbg-v1')]);
    dk = await startDockerd({ insecureRegistries: [reg.host], registryMirrors: [reg.url] });
    // The user's own image: the amd64 one under the tag a pull for arm64 moves (and the engine moves back).
    await must(['pull', '-q', '--platform', 'linux/amd64', IMAGE]);
    savedHost = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = dk.host;
  });
  after(async () => {
    if (savedHost === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = savedHost;
    setDebug(undefined);
    await dk?.stop();
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const must = (args: string[]) => dk.must(args);
  const idOf = (ref: string) => dk.idOf(ref);
  const allIds = async () => (await must(['images', '-a', '-q', '--no-trunc'])).split('\n').filter(Boolean);
  const engineTags = async () => (await must(['images', '--format', '{{.Repository}}:{{.Tag}}'])).split('\n').filter((t) => t.startsWith('kubeprepare.local/'));
  const configOf = (f: FixtureSet, platform: string) => f.image('test/debug-retag').platforms.find((p) => p.platform === platform)!.config.digest;
  /** `images --engine docker --arch arm64 IMAGE`; the env has no KUBEPREPARE_DEBUG, so only --verbose turns the channel on. */
  async function imagesCli(name: string, flags: string[]): Promise<string> {
    const env: NodeJS.ProcessEnv = { ...process.env, CI: 'true' };
    delete env.KUBEPREPARE_DEBUG;
    const io = captureIo(env);
    const args = ['images', '--engine', 'docker', '--quiet', '--arch', 'arm64', '--out', join(work, `${name}.tar`), '--cache-dir', join(work, `cache-${name}`), '--docker-config', join(work, 'none.json'), IMAGE];
    assert.equal(await runCli([...flags, ...args], io), 0, io.errText());
    return io.errText();
  }

  it('--verbose: the pin, the user\'s tag put back and the removed pin are lines on stderr, and the daemon holds what they say', async () => {
    const userId = await idOf(IMAGE);
    assert.equal(userId, configOf(fx, 'linux/amd64'));
    const armId = configOf(fx, 'linux/arm64');
    const err = await imagesCli('verbose', ['--verbose']);
    const lines = err.split('\n').filter((l) => l.startsWith('debug docker: '));
    // the pulled arm64 image pinned under a private tag, later removed again
    const pin = lines.map((l) => new RegExp(`^debug docker: tag ${armId} as (kubeprepare\\.local/tmp/\\S+:arm64)$`).exec(l)?.[1]).find(Boolean);
    assert.ok(pin, `no pin line:\n${err}`);
    const removed = lines.indexOf(`debug docker: remove reference ${pin}`);
    assert.ok(removed > lines.indexOf(`debug docker: tag ${armId} as ${pin}`), `the pin is not removed after it is set:\n${err}`);
    assert.deepEqual(await engineTags(), [], 'a private tag is left in the daemon');
    // the pull moved the user's tag to the arm64 image: the re-tag back is a line, and the tag is back
    assert.ok(lines.includes(`debug docker: tag ${userId} as ${IMAGE}`), `no re-tag line:\n${err}`);
    assert.equal(await idOf(IMAGE), userId, 'the user\'s tag does not point at the user\'s image again');
    assert.ok(lines.every((l) => /^debug docker: (tag sha256:[a-f0-9]{64} as \S+|remove reference \S+)$/.test(l)), lines.join('\n'));
  });

  it('without --verbose: the same re-tags happen and nothing is printed', async () => {
    const userId = await idOf(IMAGE);
    const err = await imagesCli('quiet', []);
    assert.doesNotMatch(err, /^debug /m);
    assert.equal(await idOf(IMAGE), userId);
    assert.deepEqual(await engineTags(), []);
  });

  it('keepImages: a kept tag moved to a newer image says so, and the replaced image is removed', async () => {
    const lines: string[] = [];
    setDebug((l) => lines.push(l));
    const keeper = await createDockerEngine({ host: dk.host, keepImages: true });
    try {
      const req = (name: string) => ({ images: [IMAGE], platform: parseArch('arm64'), outFile: join(work, `${name}.tar`), cacheDir: join(work, 'cache-keep'), mtime: 0 });
      await keeper.archive(req('keep-1'));
      const [kept] = await engineTags();
      assert.match(kept ?? '', /^kubeprepare\.local\/keep\/[a-f0-9]{16}:arm64$/);
      const oldId = await idOf(kept!);
      // The upstream tag moves: the kept tag is re-pointed, the image it pointed at removed.
      const moved = await pushFixtureSet(reg.url, [spec('dbg-v2')]);
      const newId = configOf(moved, 'linux/arm64');
      assert.notEqual(newId, oldId);
      lines.length = 0;
      await keeper.archive(req('keep-2'));
      assert.ok(lines.includes(`debug docker: tag ${newId} as ${kept}`), lines.join('\n'));
      assert.equal(await idOf(kept!), newId, 'the kept tag does not point at the new image');
      assert.ok(lines.includes(`debug docker: remove ${oldId}, no longer ${kept}`), lines.join('\n'));
      assert.ok(!(await allIds()).includes(oldId), 'the replaced kept image is still in the daemon');
    } finally {
      setDebug(undefined);
      await keeper.close();
    }
  });
});
