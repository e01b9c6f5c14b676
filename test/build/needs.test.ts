import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { verify } from '../../src/commands/verify.js';
import { runCli } from '../../src/cli.js';
import { captureIo } from '../harness/io.js';
import { entry, readTarBuffer, repack, startBundleWorld, writeTarBuffer, type BundleWorld, type MemEntry } from '../verify/world.js';

/**
 * Image completeness (src/bundle/needs.ts), end to end on real builds: taking a needed image out of the
 * versions manifest makes `build` fail (exit 2, nothing fetched or written) naming the image and what
 * needs it, for each kind of consumer; a tarball whose archive lacks a needed image fails `verify` the same
 * way, even when bundle.json's `needs` list was edited to hide it.
 */
let world: BundleWorld;
let manifest: string;
let cloud: string;
let edge: string;

/** One needed image per kind of consumer, as the world's manifest lists it, with what must be named. */
const CASES = [
  // The manifest names this image by role: without it the rendered Deployment has no image at all.
  { kind: 'rendered manifest', side: 'cloud', line: '    images:\n      cloud: [{ ref: registry.k8s.io/metrics-server/metrics-server:v0.8.0, role: metricsServer }]\n', ref: 'registry.k8s.io/metrics-server/metrics-server:v0.8.0', consumer: /Deployment kube-system\/metrics-server \(manifests\/metrics-server\.yaml\)/, build: /Deployment kube-system\/metrics-server \(manifests\/metrics-server\.yaml\): container metrics-server has no image/ },
  { kind: 'rendered manifest on the edge', side: 'edge', line: '      edge: [{ ref: kubeedge/edgemesh-agent:v1.17.0, role: edgemeshAgent }]\n', ref: 'docker.io/kubeedge/edgemesh-agent:v1.17.0', consumer: /DaemonSet kubeedge\/edgemesh-agent \(manifests\/edgemesh\/05-daemonset\.yaml\)/ },
  { kind: 'chart', side: 'cloud', line: '        - { ref: kubeedge/iptables-manager:v1.22.0, role: iptablesManager }\n', ref: 'docker.io/kubeedge/iptables-manager:v1.22.0', consumer: /CloudCore chart iptablesManager \(keadm init\)/ },
  { kind: 'K3s', side: 'cloud', line: '        - rancher/mirrored-coredns-coredns:1.13.1\n', ref: 'docker.io/rancher/mirrored-coredns-coredns:1.13.1', consumer: /K3s packaged component coredns/ },
  { kind: 'K3s sandbox', side: 'cloud', line: '        - rancher/mirrored-pause:3.6\n', ref: 'docker.io/rancher/mirrored-pause:3.6', consumer: /K3s containerd sandbox \(pause\) image/ },
  { kind: 'keadm join', side: 'edge', line: '        - { ref: kubeedge/installation-package:v1.22.0, role: installationPackage }\n', ref: 'docker.io/kubeedge/installation-package:v1.22.0', consumer: /keadm join/ },
  { kind: 'sandbox', side: 'edge', line: '        - { ref: kubeedge/pause:3.6, role: pause }\n', ref: 'docker.io/kubeedge/pause:3.6', consumer: /edgecore's podSandboxImage/ },
] as const;

before(async () => {
  world = await startBundleWorld();
  manifest = await readFile(world.manifestPath, 'utf8');
  const b = await world.build(join(world.work, 'good'));
  cloud = b.cloud;
  edge = b.edge;
});

after(async () => {
  await world?.stop();
});

test('a good build records each side\'s needs in bundle.json, every one of them shipped', async () => {
  for (const [file, side] of [[cloud, 'cloud'], [edge, 'edge']] as const) {
    const entries = readTarBuffer(await readFile(file));
    const inv = JSON.parse(entry(entries, 'bundle.json').data.toString('utf8'));
    const shipped = new Set(inv.images.list.map((i: { ref: string }) => i.ref));
    assert.ok(inv.needs.length > 0, side);
    for (const n of inv.needs) {
      assert.equal(n.side, side);
      assert.ok(n.consumer, JSON.stringify(n));
      assert.ok(shipped.has(n.ref) || n.optional, `${side}: ${n.ref} needed by ${n.consumer} is shipped`);
    }
  }
  const cloudInv = JSON.parse(entry(readTarBuffer(await readFile(cloud)), 'bundle.json').data.toString('utf8'));
  const consumers = (ref: string) => cloudInv.needs.filter((n: { ref: string }) => n.ref === ref).map((n: { consumer: string }) => n.consumer);
  assert.deepEqual(consumers('docker.io/kubeedge/edgemesh-agent:v1.17.0'), ['DaemonSet kubeedge/edgemesh-agent (manifests/edgemesh/05-daemonset.yaml)']);
  // K3s's own metrics-server is disabled by install.sh: not needed on the cloud node.
  assert.deepEqual(consumers('docker.io/rancher/mirrored-metrics-server:v0.8.0'), []);
});

for (const c of CASES) {
  test(`build: without ${c.ref} (${c.kind}) the ${c.side} build fails naming it and what needs it, before anything is fetched`, async () => {
    assert.ok(manifest.includes(c.line), c.line);
    const path = join(world.work, `no-${c.kind.replace(/\W+/g, '-')}.yaml`);
    await writeFile(path, manifest.replace(c.line, ''));
    const out = join(world.work, `out-no-${c.kind.replace(/\W+/g, '-')}`);
    const hits = world.files.requests.length;
    const io = captureIo();
    const code = await runCli(['build', '--arch', 'arm64', '--out', out, '--cache-dir', join(world.work, 'needs-cache'), '--manifest', path], io);
    const r = { code, err: io.errText() };
    assert.equal(r.code, 2, r.err);
    if ('build' in c) {
      assert.match(r.err, c.build);
      return;
    }
    const line = r.err.split('\n').find((l) => l.includes(`lacks image ${c.ref}`));
    assert.ok(line, r.err);
    assert.match(line, new RegExp(`the ${c.side} bundle`));
    assert.match(line, c.consumer);
    assert.deepEqual((await readdir(out).catch(() => [])).filter((f) => !f.startsWith('.')), [], 'nothing written');
    assert.equal(world.files.requests.length, hits, "no download");
  });
}

/** Takes `ref` out of a bundle's images archive and fixes bundle.json and SHA256SUMS so nothing else looks wrong. */
async function withoutImage(src: string, dest: string, ref: string, editInventory?: (inv: Record<string, unknown>) => void): Promise<string> {
  return repack(src, dest, (entries) => {
    const top = entries[0]!.path.split('/')[0]!;
    const imagesEntry = entry(entries, 'images/images.tar');
    const inner = readTarBuffer(imagesEntry.data);
    const doc = (name: string) => inner.find((e) => e.path === name)!;
    const index = JSON.parse(doc('index.json').data.toString('utf8'));
    const gone = index.manifests.find((m: { annotations?: Record<string, string> }) => m.annotations?.['io.containerd.image.name'] === ref);
    assert.ok(gone, `${ref} in index.json`);
    index.manifests = index.manifests.filter((m: unknown) => m !== gone);
    doc('index.json').data = Buffer.from(JSON.stringify(index));
    const blob = (d: string) => inner.find((e) => e.path === `blobs/sha256/${d.slice(7)}`)!;
    const used = new Set<string>();
    for (const m of index.manifests) {
      used.add(m.digest);
      const man = JSON.parse(blob(m.digest).data.toString('utf8'));
      used.add(man.config.digest);
      for (const l of man.layers) used.add(l.digest);
    }
    const goneManifest = JSON.parse(blob(gone.digest).data.toString('utf8'));
    const goneConfig = goneManifest.config.digest.slice(7);
    const goneBytes = gone.size + goneManifest.config.size + goneManifest.layers.reduce((n: number, l: { size: number }) => n + l.size, 0);
    const dm = JSON.parse(doc('manifest.json').data.toString('utf8')).filter((e: { Config: string }) => !e.Config.endsWith(goneConfig));
    doc('manifest.json').data = Buffer.from(JSON.stringify(dm));
    const kept = inner.filter((e) => !e.path.startsWith('blobs/sha256/') || e.dir || used.has(`sha256:${e.path.slice('blobs/sha256/'.length)}`));
    return writeTarBuffer(kept).then((buf) => {
      imagesEntry.data = buf;
      const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      const invEntry = entry(entries, 'bundle.json');
      const inv = JSON.parse(invEntry.data.toString('utf8'));
      const removed = inv.images.list.find((i: { ref: string }) => i.ref === ref);
      inv.images.list = inv.images.list.filter((i: unknown) => i !== removed);
      inv.images.sha256 = sha(buf);
      inv.images.size = buf.length;
      inv.images.totalBlobBytes -= goneBytes;
      inv.images.uniqueBlobBytes = kept.filter((e) => e.path.startsWith('blobs/sha256/') && !e.dir).reduce((n, e) => n + e.data.length, 0);
      const f = inv.files.find((x: { path: string }) => x.path === 'images/images.tar');
      f.sha256 = sha(buf);
      f.size = buf.length;
      editInventory?.(inv);
      invEntry.data = Buffer.from(`${JSON.stringify(inv, null, 2)}\n`);
      const sums = entry(entries, 'SHA256SUMS');
      sums.data = Buffer.from(
        sums.data
          .toString('utf8')
          .split('\n')
          .map((l) => (l.endsWith('  images/images.tar') ? `${sha(buf)}  images/images.tar` : l.endsWith('  bundle.json') ? `${sha(invEntry.data)}  bundle.json` : l))
          .join('\n'),
      );
      void top;
      return entries as MemEntry[];
    });
  });
}

for (const c of CASES) {
  test(`verify: a ${c.side} tarball without ${c.ref} (${c.kind}) fails naming it and what needs it`, async () => {
    const file = await withoutImage(c.side === 'cloud' ? cloud : edge, join(world.work, `v-no-${c.kind.replace(/\W+/g, '-')}.tar`), c.ref);
    const r = await verify({ file });
    assert.equal(r.ok, false);
    assert.equal(r.problems.length, 1, JSON.stringify(r.problems, null, 1));
    const p = r.problems[0]!;
    assert.equal(p.subject, c.ref);
    assert.match(p.message, new RegExp(`missing image: ${c.ref.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is needed by`));
    assert.match(p.message, c.consumer);
  });
}

test('verify: emptying bundle.json\'s needs does not hide a gap (the bundle\'s own files say what is needed)', async () => {
  const ref = 'registry.k8s.io/metrics-server/metrics-server:v0.8.0';
  const file = await withoutImage(cloud, join(world.work, 'v-hidden.tar'), ref, (inv) => {
    inv.needs = [];
  });
  const r = await verify({ file });
  assert.deepEqual(
    r.problems.map((p) => p.subject),
    [ref],
  );
  assert.match(r.problems[0]!.message, /Deployment kube-system\/metrics-server \(manifests\/metrics-server\.yaml\)/);
});
