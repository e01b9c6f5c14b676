import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeOciArchive, type OciArchiveImage } from '../../src/archive/oci-archive.js';
import { runCli } from '../../src/cli.js';
import { captureIo } from '../harness/io.js';
import { buildFixtureImage, pushFixtureSet, type FixtureImageSpec } from '../harness/fixtures.js';
import { EDGE, entry, readTarBuffer, repack, sha256, startBundleWorld, type BundleWorld } from './world.js';

/**
 * What is inside the images: an image labelled arm64 whose entrypoint is an x86-64 binary is refused by
 * `build` and by `verify`, naming image and file; the real fixture images (ELF binaries for their
 * platform behind a bin/ symlink) pass both.
 */
let world: BundleWorld;
let edge: string;
const PAUSE = 'docker.io/kubeedge/pause:3.6';
// The same image as the world's kubeedge/pause, but its arm64 layer ships an x86-64 binary.
const MISLABELLED: FixtureImageSpec = { repo: 'kubeedge/pause', tag: '3.6', format: 'docker', platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7'], layers: ['pause'], elfOf: { 'linux/arm64': 'linux/amd64' } };

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = captureIo();
  const code = await runCli(args, io);
  return { code, out: io.outText(), err: io.errText() };
}

before(async () => {
  world = await startBundleWorld();
  edge = (await world.build(join(world.work, 'good'), ['--only', 'edge'])).edge;
});
after(async () => {
  await world?.stop();
});

test('the real fixture images pass the entrypoint check in build (above) and verify', async () => {
  const r = await cli(['verify', edge]);
  assert.equal(r.code, 0, r.out + r.err);
});

test('verify refuses an arm64 bundle whose image ships x86-64 binaries, naming image and file', async () => {
  // Rewrite the bundle consistently (blobs, index.json, manifest.json, bundle.json, SHA256SUMS) with the
  // mislabelled kubeedge/pause in place of the good one: only what is inside the layer is wrong.
  const bad = await buildFixtureImage(MISLABELLED);
  const arm64 = bad.platforms.find((p) => p.platform === 'linux/arm64')!;
  const blobsDir = join(world.work, 'blobs');
  await mkdir(blobsDir, { recursive: true });
  const out = await repack(edge, join(world.work, 'mislabelled.tar'), async (entries) => {
    const imgs = entry(entries, 'images/images.tar');
    const inner = readTarBuffer(imgs.data);
    const blob = (d: string) => inner.find((e) => e.path === `blobs/sha256/${d.slice(7)}`)!.data;
    for (const e of inner) if (!e.dir && /^blobs\/sha256\/[a-f0-9]{64}$/.test(e.path)) await writeFile(join(blobsDir, e.path.slice(13)), e.data);
    for (const b of [arm64.manifest, arm64.config, ...arm64.layers]) await writeFile(join(blobsDir, b.digest.slice(7)), b.data);
    const index = JSON.parse(inner.find((e) => e.path === 'index.json')!.data.toString()) as { manifests: { digest: string; size: number; mediaType: string; annotations: Record<string, string> }[] };
    const images: OciArchiveImage[] = index.manifests.map((m) => {
      const ref = m.annotations['io.containerd.image.name']!;
      if (ref === PAUSE) {
        return { ref, platform: { os: 'linux', architecture: 'arm64' }, manifest: { digest: arm64.manifest.digest, size: arm64.manifest.size, mediaType: arm64.manifest.mediaType }, config: arm64.config, layers: arm64.layers };
      }
      const man = JSON.parse(blob(m.digest).toString()) as { config: { digest: string; size: number; mediaType: string }; layers: { digest: string; size: number; mediaType: string }[] };
      return { ref, platform: { os: 'linux', architecture: 'arm64' }, manifest: { digest: m.digest, size: m.size, mediaType: m.mediaType }, config: man.config, layers: man.layers };
    });
    const file = join(world.work, 'mislabelled-images.tar');
    const w = await writeOciArchive({ outFile: file, mtime: 1764547200, images, blobFile: (d) => join(blobsDir, d.slice(7)), blobReady: async () => {} });
    imgs.data = await readFile(file);
    const invE = entry(entries, 'bundle.json');
    const inv = JSON.parse(invE.data.toString()) as {
      images: { sha256: string; size: number; uniqueBlobBytes: number; totalBlobBytes: number; list: { ref: string; manifestDigest: string; configDigest: string; size: number }[] };
      files: { path: string; sha256: string; size: number }[];
    };
    Object.assign(inv.images, { sha256: w.sha256, size: w.size, uniqueBlobBytes: w.uniqueBlobBytes, totalBlobBytes: w.totalBlobBytes });
    const li = inv.images.list.find((l) => l.ref === PAUSE)!;
    Object.assign(li, { manifestDigest: arm64.manifest.digest, configDigest: arm64.config.digest, size: arm64.config.size + arm64.layers.reduce((s, l) => s + l.size, 0) });
    Object.assign(inv.files.find((f) => f.path === 'images/images.tar')!, { sha256: w.sha256, size: w.size });
    invE.data = Buffer.from(`${JSON.stringify(inv, null, 2)}\n`);
    const sums = entry(entries, 'SHA256SUMS');
    sums.data = Buffer.from(
      sums.data
        .toString()
        .split('\n')
        .map((l) => (l.endsWith('  images/images.tar') ? `${w.sha256}  images/images.tar` : l.endsWith('  bundle.json') ? `${sha256(invE.data)}  bundle.json` : l))
        .join('\n'),
    );
  });
  const r = await cli(['verify', out, '--json']);
  assert.notEqual(r.code, 0);
  const problems = (JSON.parse(r.out) as { problems: { kind: string; subject: string; message: string }[] }).problems;
  assert.deepEqual(
    problems.map((p) => [p.kind, p.subject, p.message]),
    [['platform', PAUSE, `platform: image ${PAUSE} (linux/arm64): /bin/pause (/opt/pause/bin.linux-arm64) is an ELF binary for x86-64, 64-bit, not AArch64, 64-bit`]],
  );
  // As text too, naming image and file.
  const t = await cli(['verify', out]);
  assert.match(t.out + t.err, /kubeedge\/pause:3\.6 \(linux\/arm64\): \/bin\/pause \(\/opt\/pause\/bin\.linux-arm64\) is an ELF binary for x86-64/);
});

test('build refuses the mislabelled image, naming image and file, and writes no tarball', async () => {
  // The registry now serves the mislabelled kubeedge/pause:3.6 (the tag moved, as upstream tags do).
  await pushFixtureSet(world.registry.url, [MISLABELLED]);
  const out = join(world.work, 'bad-build');
  const r = await world.run(['build', '--arch', 'arm64', '--only', 'edge', '--out', out, '--cache-dir', join(world.work, 'cache2')]);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /docker\.io\/kubeedge\/pause:3\.6 \(linux\/arm64\): \/bin\/pause \(\/opt\/pause\/bin\.linux-arm64\) is an ELF binary for x86-64, 64-bit, not AArch64, 64-bit/);
  await assert.rejects(readFile(join(out, `${EDGE}.tar`)));
  // amd64 has the same bytes labelled right: no problem there.
  const amd = await world.run(['images', '--arch', 'amd64', '--out', join(world.work, 'amd.tar'), PAUSE, '--cache-dir', join(world.work, 'cache2')]);
  assert.equal(amd.code, 0, amd.err);
});
