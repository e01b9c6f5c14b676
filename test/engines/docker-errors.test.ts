import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { runCli } from '../../src/cli.js';
import { UserError } from '../../src/errors.js';
import { createDockerEngine, followPull, type DockerEngine } from '../../src/engines/docker/index.js';
import { parseArch } from '../../src/platform.js';
import { startDockerd, type TestDockerd } from '../harness/dockerd.js';
import { pushFixtureSet, standardFixtureSpecs } from '../harness/fixtures.js';
import { captureIo } from '../harness/io.js';
import { freePort } from '../harness/ports.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

async function rejectsUser(p: Promise<unknown>, ...patterns: RegExp[]): Promise<UserError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    for (const re of patterns) assert.match(e.message, re);
    return e;
  }
  assert.fail('expected a rejection');
}

const ev = (o: object) => `${JSON.stringify(o)}\r\n`;

describe('pull progress stream', () => {
  it('fails on an error event even after progress that looked fine, naming the image', async () => {
    const stream = Readable.from([
      ev({ status: 'Pulling from kubeedge/cloudcore', id: 'v1.22.0' }),
      ev({ status: 'Downloading', id: 'abc', progressDetail: { current: 100, total: 200 } }),
      ev({ errorDetail: { message: 'unexpected EOF' }, error: 'unexpected EOF' }),
      ev({ status: 'Status: Downloaded newer image for kubeedge/cloudcore:v1.22.0' }),
    ]);
    await rejectsUser(followPull(stream, 'docker.io/kubeedge/cloudcore:v1.22.0 for linux/arm64'), /docker\.io\/kubeedge\/cloudcore:v1\.22\.0/, /unexpected EOF/);
  });

  it('fails on an error without errorDetail, and on a stream that ends without a result', async () => {
    await rejectsUser(followPull(Readable.from([ev({ error: 'toomanyrequests' })]), 'x:1'), /x:1/, /toomanyrequests/);
    await rejectsUser(followPull(Readable.from([ev({ status: 'Pulling fs layer', id: 'a' })]), 'x:1'), /x:1/, /ended without a result/);
  });

  it('reports download bytes and succeeds on a clean stream split across chunks', async () => {
    const text = ev({ status: 'Downloading', id: 'a', progressDetail: { current: 10 } }) + ev({ status: 'Downloading', id: 'a', progressDetail: { current: 30 } }) + ev({ status: 'Status: Image is up to date for x:1' });
    let n = 0;
    const r = await followPull(Readable.from([text.slice(0, 17), text.slice(17, 60), text.slice(60)]), 'x:1', (b) => (n += b));
    assert.equal(n, 30);
    assert.equal(r.status, 'Image is up to date for x:1');
  });
});

describe('no Docker daemon', () => {
  it('unix socket that does not exist: a runtime UserError (exit 1) naming the socket', async () => {
    const e = await rejectsUser(createDockerEngine({ host: 'unix:///nonexistent-kp/docker.sock' }), /no Docker daemon answers at unix:\/\/\/nonexistent-kp\/docker\.sock/);
    assert.equal(e.exitCode, 1);
    assert.equal(e.code, 'docker');
    assert.ok(e.hint && /DOCKER_HOST/.test(e.hint));
  });

  it('tcp address nobody listens on: names the address', async () => {
    const port = await freePort();
    const e = await rejectsUser(createDockerEngine({ host: `tcp://127.0.0.1:${port}` }), new RegExp(`tcp://127\\.0\\.0\\.1:${port}`), /ECONNREFUSED/);
    assert.equal(e.exitCode, 1);
    assert.equal(e.code, 'docker');
  });

  it('honours DOCKER_HOST; `build --engine docker` exits 1 with the socket named', async () => {
    const work = await mkdtemp(join(tmpdir(), 'kp-docker-cli-'));
    const saved = process.env.DOCKER_HOST;
    const savedOffline = process.env.KP_OFFLINE;
    try {
      const manifest = join(work, 'versions.yaml');
      await writeFile(
        manifest,
        `schemaVersion: 1
sourceDateEpoch: 1764547200
components:
  k3s:
    version: v1.31.14+k3s1
    images:
      # what a cloud node runs (the build refuses a cloud bundle without it: src/bundle/needs.ts)
      cloud: [rancher/mirrored-pause:3.6, rancher/klipper-helm:v0.9.10-build20251111, rancher/klipper-lb:v0.4.13, rancher/local-path-provisioner:v0.0.32, rancher/mirrored-coredns-coredns:1.13.1, rancher/mirrored-library-busybox:1.36.1, rancher/mirrored-library-traefik:2.11.24]
    binaries:
      - name: k3s
        role: k3s
        sides: [cloud]
        url: http://127.0.0.1:9/k3s
        dest: bin/k3s
        sha256: { pinned: { any: '${'a'.repeat(64)}' } }
      - name: k3s-install.sh
        role: k3sInstallScript
        sides: [cloud]
        url: http://127.0.0.1:9/install.sh
        dest: scripts/k3s-install.sh
        sha256: { pinned: { any: '${'a'.repeat(64)}' } }
  kubeedge:
    version: v1.22.0
    images:
      cloud: [{ ref: kubeedge/cloudcore:v1.22.0, role: cloudcore }, { ref: kubeedge/iptables-manager:v1.22.0, role: iptablesManager }]
      edge: [{ ref: kubeedge/pause:3.6, role: pause }]
    binaries:
      - name: keadm
        role: keadm
        sides: [cloud, edge]
        url: http://127.0.0.1:9/keadm.tar.gz
        extract: keadm/keadm
        dest: bin/keadm
        sha256: { pinned: { any: '${'b'.repeat(64)}' } }
  edgemesh:
    version: v1.17.0
    images:
      cloud: [{ ref: kubeedge/edgemesh-agent:v1.17.0, role: edgemeshAgent }]
  metricsServer:
    version: v0.8.0
    images:
      cloud: [{ ref: registry.k8s.io/metrics-server/metrics-server:v0.8.0, role: metricsServer }]
`,
      );
      process.env.DOCKER_HOST = `unix://${join(work, 'no-such', 'docker.sock')}`;
      process.env.KP_OFFLINE = '1';
      const io = captureIo();
      const code = await runCli(['build', '--engine', 'docker', '--arch', 'arm64', '--only', 'cloud', '--manifest', manifest, '--out', join(work, 'out'), '--cache-dir', join(work, 'cache')], io);
      assert.equal(code, 1, io.errText());
      assert.match(io.errText(), new RegExp(`no Docker daemon answers at unix://${join(work, 'no-such', 'docker.sock').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
      if (savedOffline === undefined) delete process.env.KP_OFFLINE;
      else process.env.KP_OFFLINE = savedOffline;
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe('pull failures through a real daemon', () => {
  let reg: TestRegistry;
  let dk: TestDockerd;
  let engine: DockerEngine;
  let work: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kp-docker-err-'));
    reg = await startRegistry();
    await pushFixtureSet(reg.url, [
      ...standardFixtureSpecs(),
      { repo: 'library/amd64index', tag: '1.0', format: 'oci', platforms: ['linux/amd64'], layers: ['alpine-base'] },
    ]);
    dk = await startDockerd({ insecureRegistries: [reg.host], registryMirrors: [reg.url] });
    engine = await createDockerEngine({ host: dk.host });
  });
  after(async () => {
    await engine?.close();
    await dk?.stop();
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const build = (images: string[], arch: string, name: string) =>
    engine.archive({ images, platform: parseArch(arch), outFile: join(work, `${name}.tar`), cacheDir: join(work, 'cache'), mtime: 0 });

  async function daemonImages(): Promise<string> {
    const r = await dk.docker(['images', '-a', '--digests', '--no-trunc', '--format', '{{.Repository}}:{{.Tag}} {{.Digest}} {{.ID}}']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim().split('\n').filter(Boolean).sort().join('\n');
  }

  it('a missing tag fails with the image named, and no archive is written', async () => {
    const ref = `${reg.host}/kubeedge/cloudcore:nope`;
    const e = await rejectsUser(build([`${reg.host}/kubeedge/cloudcore:v1.22.0`, ref], 'arm64', 'missing-tag'), new RegExp(`pulling ${ref.replace(/[.]/g, '\\.')} for linux/arm64 failed`));
    assert.equal(e.exitCode, 1);
    assert.equal(existsSync(join(work, 'missing-tag.tar')), false);
    // through the docker.io mirror too (the daemon then also tries docker.io itself)
    await rejectsUser(build(['docker.io/kubeedge/nothing-here:v1'], 'arm64', 'missing-tag-2'), /docker\.io\/kubeedge\/nothing-here:v1/);
    assert.equal(await daemonImages(), '', 'the failed builds left images or tags behind');
  });

  it('a platform missing from the index fails inside the progress stream with the image named', async () => {
    const ref = `${reg.host}/library/amd64index:1.0`;
    await rejectsUser(build([ref], 'arm64', 'missing-platform'), new RegExp(`pulling ${ref.replace(/[.]/g, '\\.')} for linux/arm64 failed`), /no matching manifest for linux\/arm64/);
    assert.equal(existsSync(join(work, 'missing-platform.tar')), false);
  });

  it('a variant the daemon substitutes (arm/v7 for arm/v6) is caught by the platform check', async () => {
    const ref = `${reg.host}/kubeedge/cloudcore:v1.22.0`;
    assert.equal((await rejectsUser(build([ref], 'arm/v6', 'wrong-variant'), new RegExp(ref.replace(/[.]/g, '\\.')), /linux\/arm\/v7 .*not linux\/arm\/v6/)).code, 'platform');
    assert.equal(existsSync(join(work, 'wrong-variant.tar')), false);
    assert.equal(await daemonImages(), '');
  });

  it('a single-platform image the daemon pulls anyway for another architecture is an error, never a silent save', async () => {
    // Docker 20.10 pulls an amd64-only image for --platform linux/arm64 without complaint.
    assert.equal((await rejectsUser(build(['docker.io/library/amd64only:1.0'], 'arm64', 'wrong-arch'), /docker\.io\/library\/amd64only:1\.0/, /is linux\/amd64 .*not linux\/arm64/)).code, 'platform');
    assert.equal(existsSync(join(work, 'wrong-arch.tar')), false);
    assert.equal(await daemonImages(), '', 'the wrongly pulled image (or a temp tag) was left in the daemon');
  });
});
