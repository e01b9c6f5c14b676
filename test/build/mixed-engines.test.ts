import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, readdir, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startBundleWorld, CLOUD, type BundleWorld } from '../harness/bundle-world.js';
import { startDockerd, type TestDockerd } from '../harness/dockerd.js';
import { assertImagesComplete, importArchive, startContainerd, type TestContainerd } from '../harness/containerd.js';
import { extractArchive } from '../harness/archive.js';
import { captureIo } from '../harness/io.js';
import { runCli } from '../../src/cli.js';

/**
 * Per-image engines in one build: the manifest names `engine: docker, pull: never` for an image that
 * exists only in the local Docker daemon (built in the same CI job, say); every other image comes
 * through the registry engine. One images archive holds both, loads into a real containerd, and the
 * daemon is left as it was.
 */
const LOCAL = 'site.local/tools/probe:1.0';
let world: BundleWorld;
let dockerd: TestDockerd;
let ctd: TestContainerd;
let savedHost: string | undefined;
let localId: string;
let mixedManifest: string;

async function dockerOk(args: string[]): Promise<string> {
  const r = await dockerd.docker(args);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

before(async () => {
  world = await startBundleWorld();
  dockerd = await startDockerd({ insecureRegistries: [world.registry.host] });
  ctd = await startContainerd();
  // The local-only image: an arm64 image put into the daemon under a name no registry has.
  const src = `${world.registry.host}/kubeedge/iptables-manager:v1.22.0`;
  await dockerOk(['pull', '-q', '--platform', 'linux/arm64', src]);
  await dockerOk(['tag', src, LOCAL]);
  await dockerOk(['rmi', src]);
  localId = await dockerOk(['image', 'inspect', '--format', '{{.Id}}', LOCAL]);
  const text = await readFile(world.manifestPath, 'utf8');
  const withLocal = text.replace(
    '        - { ref: kubeedge/iptables-manager:v1.22.0, role: iptablesManager }\n',
    `        - { ref: kubeedge/iptables-manager:v1.22.0, role: iptablesManager }\n        - { ref: ${LOCAL}, engine: docker, pull: never }\n`,
  );
  assert.notEqual(withLocal, text);
  mixedManifest = join(world.work, 'mixed.yaml');
  await writeFile(mixedManifest, withLocal);
  savedHost = process.env.DOCKER_HOST;
  process.env.DOCKER_HOST = dockerd.host;
});

after(async () => {
  if (savedHost === undefined) delete process.env.DOCKER_HOST;
  else process.env.DOCKER_HOST = savedHost;
  await ctd?.stop();
  await dockerd?.stop();
  await world?.stop();
});

async function images(): Promise<string> {
  return dockerOk(['images', '--all', '--digests', '--format', '{{.Repository}}:{{.Tag}} {{.Digest}} {{.ID}}']);
}

test('one build, two engines: the registry images and the daemon-only image land in one archive that containerd imports', async () => {
  const before = await images();
  const out = join(world.work, 'mixed-out');
  const io = captureIo();
  const code = await runCli(['build', '--arch', 'arm64', '--only', 'cloud', '--manifest', mixedManifest, '--out', out, '--cache-dir', join(world.work, 'mixed-cache')], io);
  assert.equal(code, 0, io.errText());
  assert.equal(await images(), before, 'the daemon is left as it was');

  const x = join(world.work, 'mixed-x');
  await mkdir(x);
  execFileSync('tar', ['xf', join(out, `${CLOUD}.tar`), '-C', x]);
  const top = join(x, CLOUD);
  execFileSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: top });
  const inv = JSON.parse(await readFile(join(top, 'bundle.json'), 'utf8')) as { images: { archive: string; list: { ref: string; configDigest: string; platform: string }[] } };
  const refs = inv.images.list.map((i) => i.ref).sort();
  assert.deepEqual(refs, [
    'docker.io/kubeedge/cloudcore:v1.22.0',
    'docker.io/kubeedge/edgemesh-agent:v1.17.0',
    'docker.io/kubeedge/iptables-manager:v1.22.0',
    'docker.io/rancher/klipper-helm:v0.9.10-build20251111',
    'docker.io/rancher/klipper-lb:v0.4.13',
    'docker.io/rancher/local-path-provisioner:v0.0.32',
    'docker.io/rancher/mirrored-coredns-coredns:1.13.1',
    'docker.io/rancher/mirrored-library-busybox:1.36.1',
    'docker.io/rancher/mirrored-library-traefik:2.11.24',
    'docker.io/rancher/mirrored-pause:3.6',
    'registry.k8s.io/metrics-server/metrics-server:v0.8.0',
    LOCAL,
  ].sort());
  // bundle.json says where each image came from: the daemon-only one from the docker engine.
  for (const i of inv.images.list as { ref: string; engine: string }[]) assert.equal(i.engine, i.ref === LOCAL ? 'docker' : 'registry', i.ref);
  const local = inv.images.list.find((i) => i.ref === LOCAL)!;
  assert.equal(local.configDigest, localId, 'the daemon-only image keeps its image ID');
  // The same content fetched by the registry engine has the same image ID (config digest).
  const viaRegistry = inv.images.list.find((i) => i.ref === 'docker.io/kubeedge/iptables-manager:v1.22.0')!;
  assert.equal(viaRegistry.configDigest, localId);

  const archiveFile = (await readdir(join(top, 'images'))).map((f) => join(top, 'images', f)).find((f) => f.endsWith('.tar'))!;
  const layout = await extractArchive(archiveFile);
  const names = layout.index.manifests.map((m) => m.annotations?.['io.containerd.image.name']).sort();
  assert.deepEqual(names, refs);
  assert.deepEqual(layout.dockerManifest.map((m) => m.RepoTags[0]).sort(), refs);

  await importArchive(ctd, archiveFile, 'linux/arm64');
  await assertImagesComplete(ctd, refs);

  // `verify` accepts the bundle: consumers cannot tell two engines made its archive.
  const io2 = captureIo();
  assert.equal(await runCli(['verify', join(out, `${CLOUD}.tar`)], io2), 0, io2.errText() + io2.outText());
});

test('a daemon-only image that is not in the daemon fails the build naming it; the registry share stops and nothing is written', async () => {
  const text = await readFile(mixedManifest, 'utf8');
  const absent = join(world.work, 'absent.yaml');
  await writeFile(absent, text.replace(LOCAL, 'site.local/tools/absent:2.0'));
  const out = join(world.work, 'absent-out');
  const io = captureIo();
  const code = await runCli(['build', '--arch', 'arm64', '--only', 'cloud', '--manifest', absent, '--out', out, '--cache-dir', join(world.work, 'absent-cache')], io);
  assert.equal(code, 1, io.errText());
  assert.match(io.errText(), /site\.local\/tools\/absent:2\.0 is not in the Docker daemon/);
  const left = await readdir(out).catch(() => []);
  assert.deepEqual(left.filter((f) => !f.startsWith('.')), [], `left behind: ${left.join(', ')}`);
  assert.deepEqual(left, [], `no work dirs left: ${left.join(', ')}`);
});
