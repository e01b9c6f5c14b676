import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, readFile, truncate, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { captureIo } from '../harness/io.js';
import { runCli } from '../../src/cli.js';
import { verify } from '../../src/commands/verify.js';
import { TarStreamParser } from '../../src/bundle/read.js';
import { CLOUD, EDGE, entry, fakeElf, readTarBuffer, repack, sha256, startBundleWorld, writeTarBuffer, type BundleWorld, type MemEntry } from './world.js';

/**
 * `kubeprepare verify` against real bundles (built from a local registry and release server) and
 * tampered copies of them: a flipped byte in an image blob inside the nested images.tar, a missing
 * file, a truncated tarball (plain, gzip, zstd), the wrong --arch, several problems at once.
 */
let world: BundleWorld;
let cloud: string;
let edge: string;

before(async () => {
  for (const prog of ['zstd', 'tar', 'sha256sum']) {
    // Missing tools are failures, not skips.
    execFileSync('sh', ['-c', `command -v ${prog}`], { stdio: 'pipe' });
  }
  world = await startBundleWorld();
  const b = await world.build(join(world.work, 'good'));
  cloud = b.cloud;
  edge = b.edge;
});

after(async () => {
  await world?.stop();
});

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = captureIo();
  const code = await runCli(args, io);
  return { code, out: io.outText(), err: io.errText() };
}

const tmp = (name: string) => join(world.work, name);

/** Where an entry's data starts in a plain ustar archive (the bundle's paths need no pax headers). */
function dataOffset(tar: Buffer, path: string): { start: number; size: number } {
  let pos = 0;
  while (pos + 512 <= tar.length) {
    const name = tar.subarray(pos, pos + 100).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(tar.subarray(pos + 124, pos + 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
    if (name === path) return { start: pos + 512, size };
    if (name === '') break;
    pos += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error(`${path} not found`);
}

test('a good cloud and edge bundle verify: exit 0 and a one-line OK summary; --json says ok', async () => {
  for (const [file, side, images] of [
    [cloud, 'cloud', 11],
    [edge, 'edge', 3],
  ] as const) {
    const r = await cli(['verify', file]);
    assert.equal(r.code, 0, r.out + r.err);
    assert.equal(r.out.split('\n').length, 1, r.out);
    assert.match(r.out, new RegExp(`^OK kubeprepare-${side}-v1\\.22\\.0-linux-arm64\\.tar: ${side} bundle .* for linux/arm64: \\d+ files, ${images} images \\(\\d+ blobs\\) match`));
    const j = await cli(['verify', file, '--json']);
    assert.equal(j.code, 0);
    const parsed = JSON.parse(j.out);
    assert.equal(parsed.ok, true);
    assert.deepEqual(parsed.problems, []);
    assert.equal(parsed.images, images);
    assert.equal(parsed.platform, 'linux/arm64');
  }
  // --arch equal to the bundle's is fine too (arm64/v8 images included: edgemesh-agent says variant v8)
  assert.equal((await cli(['verify', cloud, '--arch', 'arm64'])).code, 0);
});

test('gzip and zstd bundles are detected by content (not by name) and verify', async () => {
  const b = await world.build(join(world.work, 'gz'), ['--compression', 'gzip', '--only', 'edge']);
  const z = await world.build(join(world.work, 'zst'), ['--compression', 'zstd', '--only', 'edge']);
  const r1 = await verify({ file: b.edge });
  assert.equal(r1.compression, 'gzip');
  assert.deepEqual(r1.problems, []);
  const r2 = await verify({ file: z.edge });
  assert.equal(r2.compression, 'zstd');
  assert.deepEqual(r2.problems, []);
  // a misleading name does not matter
  const renamed = tmp('looks-plain.tar');
  await copyFile(z.edge, renamed);
  assert.equal((await verify({ file: renamed })).compression, 'zstd');
  const r = await cli(['verify', renamed]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /zstd/);
});

test('a flipped byte in an image blob inside images.tar fails, naming the blob, the image and the archive', async () => {
  const bad = tmp('flipped-blob.tar');
  let digest = '';
  await repack(cloud, bad, async (entries) => {
    const images = entry(entries, 'images/images.tar');
    const inner = readTarBuffer(images.data);
    const index = JSON.parse(inner.find((e) => e.path === 'index.json')!.data.toString('utf8'));
    const desc = index.manifests.find((m: { annotations: Record<string, string> }) => m.annotations['io.containerd.image.name'] === 'docker.io/kubeedge/cloudcore:v1.22.0');
    const manifest = JSON.parse(inner.find((e) => e.path === `blobs/sha256/${desc.digest.slice(7)}`)!.data.toString('utf8'));
    digest = manifest.layers[2].digest; // cloudcore-bin: used by cloudcore only
    const blob = inner.find((e) => e.path === `blobs/sha256/${digest.slice(7)}`)!;
    blob.data = Buffer.from(blob.data);
    blob.data[100] = (blob.data[100] ?? 0) ^ 0xff;
    const data = await writeTarBuffer(inner);
    return entries.map((e) => (e === images ? { ...e, data } : e));
  });
  const r = await cli(['verify', bad]);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /^FAILED /);
  assert.match(r.out, new RegExp(`corrupted blob: images/images\\.tar blobs/sha256/${digest.slice(7)} hashes to sha256:[a-f0-9]{64} \\(used by docker\\.io/kubeedge/cloudcore:v1\\.22\\.0\\)`));
  // the outer archive's own checks see the modified images.tar too — all problems at once
  assert.match(r.out, /modified: images\/images\.tar has sha256 [a-f0-9]{64}; SHA256SUMS says [a-f0-9]{64}; bundle\.json says [a-f0-9]{64}/);
  assert.match(r.err, /error: .*flipped-blob\.tar: \d+ problems found/);
  const j = JSON.parse((await cli(['verify', bad, '--json'])).out);
  assert.equal(j.ok, false);
  assert.ok(j.problems.some((p: { kind: string; subject: string }) => p.kind === 'blob' && p.subject === digest));
});

test('a missing file fails, naming the file and why it is needed', async () => {
  const bad = tmp('missing-keadm.tar');
  await repack(edge, bad, (entries) => entries.filter((e) => !e.path.endsWith('/bin/keadm')));
  const r = await cli(['verify', bad]);
  assert.equal(r.code, 1);
  assert.match(r.out, /missing: bin\/keadm \(listed in SHA256SUMS; listed in bundle\.json; needed by install\.sh\/verify\.sh\)/);
  // a required file that no list names is reported too (SHA256SUMS and bundle.json edited to match)
  const bad2 = tmp('missing-metrics.tar');
  await repack(cloud, bad2, (entries) => {
    const out = entries.filter((e) => !e.path.endsWith('/manifests/metrics-server.yaml'));
    const sums = entry(out, 'SHA256SUMS');
    sums.data = Buffer.from(sums.data.toString('utf8').split('\n').filter((l) => !l.endsWith('manifests/metrics-server.yaml')).join('\n'));
    const inv = entry(out, 'bundle.json');
    const j = JSON.parse(inv.data.toString('utf8'));
    j.files = j.files.filter((f: { path: string }) => f.path !== 'manifests/metrics-server.yaml');
    inv.data = Buffer.from(JSON.stringify(j, null, 2));
    return out;
  });
  const r2 = await cli(['verify', bad2]);
  assert.equal(r2.code, 1);
  assert.match(r2.out, /missing: manifests\/metrics-server\.yaml \(needed by the cloud install\.sh\)/);
  // editing bundle.json makes it disagree with SHA256SUMS: reported as well
  assert.match(r2.out, /modified: bundle\.json has sha256 [a-f0-9]{64}; SHA256SUMS says/);
});

test('a truncated tarball is reported as truncated (plain, gzip and zstd), with what it cut short', async () => {
  // cut in the middle of images/images.tar (the nested archive is cut short too)
  const whole = await readFile(cloud);
  const at = dataOffset(whole, `${CLOUD}/images/images.tar`);
  const cut = tmp('truncated.tar');
  await writeFile(cut, whole.subarray(0, at.start + Math.floor(at.size / 2)));
  const r = await cli(['verify', cut]);
  assert.equal(r.code, 1);
  assert.match(r.out, new RegExp(`truncated: the archive ends inside ${CLOUD}/images/images\\.tar after \\d+ of ${at.size} bytes — the tarball was not copied completely`));
  // bundle.json and SHA256SUMS come last (they record the images archive's digest, known once it was
  // streamed into the tarball): a cut inside the archive loses them, so the files after the cut are
  // named as missing from what the install scripts need.
  assert.match(r.out, /missing: SHA256SUMS \(needed by install\.sh\/verify\.sh\)/);
  assert.match(r.out, /missing: bundle\.json \(needed by install\.sh\/verify\.sh\)/);
  assert.match(r.out, /missing: verify\.sh \(needed by install\.sh\/verify\.sh\)/, 'files after the cut are listed as missing');
  // cut inside a header block
  const size = (await stat(cloud)).size;
  const cut2 = tmp('truncated2.tar');
  await writeFile(cut2, whole.subarray(0, at.start + at.size + ((512 - (at.size % 512)) % 512) + 100));
  const r2 = await cli(['verify', cut2]);
  assert.equal(r2.code, 1);
  assert.match(r2.out, /truncated: the archive ends in the middle of a header block/);
  assert.ok(size > at.start);
  // cut exactly at an entry boundary (no end-of-archive marker): still truncated
  const entries = readTarBuffer(await readFile(cloud));
  const head = await writeTarBuffer(entries.slice(0, 5));
  const boundary = tmp('boundary.tar');
  await writeFile(boundary, head.subarray(0, head.length - 1024));
  const rb = await cli(['verify', boundary]);
  assert.equal(rb.code, 1);
  assert.match(rb.out, /truncated: the archive ends after .* without the end-of-archive marker/);

  const gz = await world.build(join(world.work, 'gz-t'), ['--compression', 'gzip', '--only', 'edge']);
  const gzCut = tmp('truncated.tar.gz');
  await copyFile(gz.edge, gzCut);
  await truncate(gzCut, Math.floor((await stat(gz.edge)).size / 2));
  const rg = await verify({ file: gzCut });
  assert.equal(rg.ok, false);
  assert.ok(rg.problems.some((p) => p.kind === 'truncated' && /truncated or corrupt gzip stream/.test(p.message)), JSON.stringify(rg.problems));

  const zs = await world.build(join(world.work, 'zs-t'), ['--compression', 'zstd', '--only', 'edge']);
  const zsCut = tmp('truncated.tar.zst');
  await copyFile(zs.edge, zsCut);
  await truncate(zsCut, Math.floor((await stat(zs.edge)).size / 2));
  const rz = await cli(['verify', zsCut]);
  assert.equal(rz.code, 1);
  assert.match(rz.out, /truncated or corrupt zstd stream/);
});

test('an arm64 bundle checked with --arch amd64 fails naming the mismatch for every image and binary', async () => {
  const r = await cli(['verify', cloud, '--arch', 'amd64']);
  assert.equal(r.code, 1);
  assert.match(r.out, /^FAILED .* for linux\/arm64 \(checked against linux\/amd64\)/);
  assert.match(r.out, /the bundle is for linux\/arm64 \(bundle\.json\), but linux\/amd64 was asked for \(--arch\)/);
  for (const ref of ['docker.io/kubeedge/cloudcore:v1.22.0', 'docker.io/rancher/mirrored-pause:3.6', 'registry.k8s.io/metrics-server/metrics-server:v0.8.0']) {
    assert.match(r.out, new RegExp(`platform: image ${ref.replace(/[.]/g, '\\.')} is linux/arm64 \\(config [a-f0-9]{12}\\), the bundle is for linux/amd64`));
  }
  assert.match(r.out, /platform: image docker\.io\/kubeedge\/edgemesh-agent:v1\.17\.0 is linux\/arm64\/v8/);
  assert.match(r.out, /platform: bin\/k3s is an ELF binary for arm64, the bundle is for linux\/amd64/);
  // an amd64 binary smuggled into the arm64 bundle, with SHA256SUMS "fixed" to match
  const bad = tmp('amd64-k3s.tar');
  await repack(cloud, bad, async (entries) => {
    const k3s = entry(entries, 'bin/k3s');
    const old = sha256(k3s.data);
    k3s.data = fakeElf(0x3e, 'k3s amd64 binary\n');
    const sums = entry(entries, 'SHA256SUMS');
    sums.data = Buffer.from(sums.data.toString('utf8').replace(old, sha256(k3s.data)));
  });
  const r2 = await cli(['verify', bad]);
  assert.equal(r2.code, 1);
  assert.match(r2.out, /platform: bin\/k3s is an ELF binary for amd64, the bundle is for linux\/arm64/);
});

test('several problems are all listed at once: modified binary, missing file, extra file, corrupted blob', async () => {
  const bad = tmp('many.tar');
  await repack(cloud, bad, async (entries) => {
    const keadm = entry(entries, 'bin/keadm');
    keadm.data = Buffer.from(keadm.data);
    keadm.data[3] = (keadm.data[3] ?? 0) ^ 1;
    const images = entry(entries, 'images/images.tar');
    const inner = readTarBuffer(images.data);
    const blobEntry = inner.filter((e) => e.path.startsWith('blobs/sha256/') && !e.dir).sort((a, b) => b.data.length - a.data.length)[0]!;
    blobEntry.data = Buffer.from(blobEntry.data);
    blobEntry.data[10] = (blobEntry.data[10] ?? 0) ^ 0x55;
    images.data = await writeTarBuffer(inner);
    const out = entries.filter((e) => !e.path.endsWith('/verify.sh'));
    out.push({ path: `${CLOUD}/bin/backdoor`, dir: false, mode: 0o755, data: Buffer.from('#!/bin/sh\n') });
    return out;
  });
  const r = await verify({ file: bad });
  assert.equal(r.ok, false);
  const kinds = r.problems.map((p) => `${p.kind} ${p.subject}`);
  for (const want of ['modified bin/keadm', 'missing verify.sh', 'extra bin/backdoor', 'modified images/images.tar']) assert.ok(kinds.includes(want), `${want} in ${kinds.join(', ')}`);
  assert.ok(r.problems.some((p) => p.kind === 'blob' && /corrupted blob/.test(p.message)), kinds.join(', '));
  const c = await cli(['verify', bad]);
  assert.match(c.out, new RegExp(`FAILED .*: ${r.problems.length} problems`));
  assert.equal(c.out.split('\n').length, r.problems.length + 1, 'one line per problem');
});

test('a referenced blob missing from images.tar and an image listed in bundle.json but absent are reported', async () => {
  const bad = tmp('no-blob.tar');
  let gone = '';
  await repack(edge, bad, async (entries) => {
    const images = entry(entries, 'images/images.tar');
    let inner = readTarBuffer(images.data);
    const index = JSON.parse(inner.find((e) => e.path === 'index.json')!.data.toString('utf8'));
    const desc = index.manifests.find((m: { annotations: Record<string, string> }) => m.annotations['io.containerd.image.name'] === 'docker.io/kubeedge/installation-package:v1.22.0');
    const manifest = JSON.parse(inner.find((e) => e.path === `blobs/sha256/${desc.digest.slice(7)}`)!.data.toString('utf8'));
    gone = manifest.config.digest;
    inner = inner.filter((e) => e.path !== `blobs/sha256/${gone.slice(7)}`);
    // and drop kubeedge/pause from index.json (bundle.json still lists it)
    const idx = inner.find((e) => e.path === 'index.json')!;
    index.manifests = index.manifests.filter((m: { annotations: Record<string, string> }) => m.annotations['io.containerd.image.name'] !== 'docker.io/kubeedge/pause:3.6');
    idx.data = Buffer.from(JSON.stringify(index));
    images.data = await writeTarBuffer(inner);
  });
  const r = await cli(['verify', bad]);
  assert.equal(r.code, 1);
  assert.match(r.out, new RegExp(`missing blob: config ${gone} of image docker\\.io/kubeedge/installation-package:v1\\.22\\.0 is not in images/images\\.tar`));
  assert.match(r.out, /missing blob: blobs\/sha256\/[a-f0-9]{64} \(manifest\.json, docker\.io\/kubeedge\/installation-package:v1\.22\.0\)/);
  assert.match(r.out, /missing image: docker\.io\/kubeedge\/pause:3\.6 \(manifest sha256:[a-f0-9]{64}, listed in bundle\.json\) is not in images\/images\.tar/);
});

test('not a bundle, not a tar, no such file: clear messages and exit codes', async () => {
  const r = await cli(['verify', tmp('does-not-exist.tar')]);
  assert.equal(r.code, 2);
  assert.match(r.err, /cannot read .*does-not-exist\.tar: ENOENT/);
  const junk = tmp('junk.tar');
  await writeFile(junk, Buffer.alloc(4096, 0x41));
  const rj = await cli(['verify', junk]);
  assert.equal(rj.code, 1);
  assert.match(rj.out, /corrupt: not a tar archive/);
  const gzJunk = tmp('junk.tar.gz');
  await writeFile(gzJunk, gzipSync(Buffer.alloc(4096, 0x41)));
  assert.match((await cli(['verify', gzJunk])).out, /not a tar archive/);
});

test('the stream parser reads pax long names, GNU long names and tars split into 1-byte chunks', async () => {
  const long = `${'d'.repeat(120)}/${'f'.repeat(120)}.txt`;
  const tarBuf = await writeTarBuffer([{ path: long, dir: false, mode: 0o644, data: Buffer.from('hello') }]);
  const seen: string[] = [];
  const p = new TarStreamParser((h) => {
    seen.push(h.path);
    const parts: Buffer[] = [];
    return { data: (c) => parts.push(Buffer.from(c)), end: () => seen.push(Buffer.concat(parts).toString()) };
  });
  for (let i = 0; i < tarBuf.length; i++) p.write(tarBuf.subarray(i, i + 1));
  assert.deepEqual(p.end(), { entries: 1, bytes: tarBuf.length, complete: true });
  assert.deepEqual(seen, [long, 'hello']);
  // GNU tar's own output (GNU long name ././@LongLink), as a reader in the field would meet it
  const dir = tmp('gnu');
  execFileSync('mkdir', ['-p', join(dir, 'x'.repeat(150))]);
  await writeFile(join(dir, 'x'.repeat(150), 'y'.repeat(60)), 'gnu');
  const gnu = execFileSync('tar', ['--format=gnu', '-cf', '-', '-C', dir, '.'], { maxBuffer: 1 << 24 });
  const names = readTarBuffer(gnu).map((e) => e.path);
  assert.ok(names.includes(`./${'x'.repeat(150)}/${'y'.repeat(60)}`), names.join(','));
});

