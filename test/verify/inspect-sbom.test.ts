import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { captureIo } from '../harness/io.js';
import { runCli } from '../../src/cli.js';
import { makeSbom, uuidV5 } from '../../src/bundle/sbom.js';
import { CLOUD, EDGE, entry, readTarBuffer, repack, sha256, startBundleWorld, type BundleWorld } from './world.js';

/** `kubeprepare inspect` (table and --json) and `build --sbom` (CycloneDX 1.5 inside each bundle). */
let world: BundleWorld;
let cloud: string;
let edge: string;

before(async () => {
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

test('inspect prints components, images with platform and digest, binaries and the deduplication saving', async () => {
  const r = await cli(['inspect', cloud]);
  assert.equal(r.code, 0, r.err);
  const inv = JSON.parse(execFileSync('tar', ['xOf', cloud, `${CLOUD}/bundle.json`], { encoding: 'utf8' }));
  assert.match(r.out, new RegExp(`^${CLOUD}\\.tar: cloud bundle ${CLOUD} for linux/arm64`));
  assert.match(r.out, /\nComponents\ncomponent +version\n-+ +-+\n/);
  assert.match(r.out, /\nkubeedge +v1\.22\.0\n/);
  assert.match(r.out, /\nk3s +v1\.31\.14\+k3s1\n/);
  assert.match(r.out, /\nImages \(11\)\nimage +platform +digest +size +component +engine\n/);
  for (const img of inv.images.list) {
    const row = r.out.split('\n').find((l) => l.startsWith(`${img.ref} `));
    assert.ok(row, `row for ${img.ref}`);
    assert.match(row, new RegExp(` ${img.platform.replace(/\//g, '\\/')} +sha256:${img.manifestDigest.slice(7, 19)} `));
    assert.match(row, / registry$/, 'fetched by the registry engine');
  }
  assert.match(r.out, /docker\.io\/kubeedge\/edgemesh-agent:v1\.17\.0 +linux\/arm64\/v8 /);
  assert.match(r.out, /\nBinaries \(3\)\npath +name +version +size +sha256\n/);
  assert.match(r.out, /\nbin\/k3s +k3s +v1\.31\.14\+k3s1 /);
  const saved = inv.images.totalBlobBytes - inv.images.uniqueBlobBytes;
  assert.ok(saved > 0, 'the fixture images share layers');
  assert.match(r.out, /\nDeduplication\n  image blobs .* before sharing, .* stored: saved .* \(\d+\.\d%\)\n  cross-checked: \d+ distinct blobs/);
  assert.doesNotMatch(r.out, /Warnings/);
});

test('inspect --json parses and cross-checks the dedup figures against the archive', async () => {
  for (const [file, side] of [
    [cloud, 'cloud'],
    [edge, 'edge'],
  ] as const) {
    const r = await cli(['inspect', file, '--json']);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out);
    const inv = JSON.parse(execFileSync('tar', ['xOf', file, `${side === 'cloud' ? CLOUD : EDGE}/bundle.json`], { encoding: 'utf8' }));
    assert.equal(j.side, side);
    assert.equal(j.platform, 'linux/arm64');
    assert.deepEqual(
      j.components.map((c: { name: string }) => c.name),
      Object.keys(inv.components),
    );
    assert.equal(j.images.length, inv.images.list.length);
    for (const i of j.images) {
      assert.match(i.digest, /^sha256:[a-f0-9]{64}$/);
      assert.match(i.platform, /^linux\/arm64(\/v8)?$/);
      assert.ok(i.size > 0 && i.layers > 0);
      assert.equal(i.engine, 'registry');
    }
    assert.deepEqual(j.dedup.archive, { totalBlobBytes: inv.images.totalBlobBytes, uniqueBlobBytes: inv.images.uniqueBlobBytes, blobs: j.dedup.archive.blobs });
    assert.equal(j.dedup.consistent, true);
    assert.equal(j.dedup.savedBytes, inv.images.totalBlobBytes - inv.images.uniqueBlobBytes);
    assert.deepEqual(j.warnings, []);
  }
});

test('inspect reports a bundle.json whose dedup figures disagree with the archive', async () => {
  const bad = join(world.work, 'lying.tar');
  await repack(cloud, bad, (entries) => {
    const e = entry(entries, 'bundle.json');
    const inv = JSON.parse(e.data.toString('utf8'));
    inv.images.uniqueBlobBytes = 1;
    e.data = Buffer.from(JSON.stringify(inv, null, 2));
  });
  const r = await cli(['inspect', bad]);
  assert.equal(r.code, 0);
  assert.match(r.out, /MISMATCH: the images archive holds/);
  assert.match(r.out, /Warnings \(\d+; run kubeprepare verify for a full check\)/);
  const r2 = await cli(['inspect', join(world.work, 'nope.tar')]);
  assert.equal(r2.code, 2);
});

test('build --sbom writes a deterministic CycloneDX 1.5 sbom.cdx.json in each bundle, listed in SHA256SUMS', async () => {
  const a = await world.build(join(world.work, 'sbom-a'), ['--sbom']);
  const b = await world.build(join(world.work, 'sbom-b'), ['--sbom']);
  assert.equal(sha256(await readFile(a.cloud)), sha256(await readFile(b.cloud)), 'same bytes twice');
  for (const [file, top] of [
    [a.cloud, CLOUD],
    [a.edge, EDGE],
  ] as const) {
    const entries = readTarBuffer(await readFile(file));
    const sbomText = entry(entries, 'sbom.cdx.json').data.toString('utf8');
    const sums = entry(entries, 'SHA256SUMS').data.toString('utf8');
    assert.match(sums, new RegExp(`^${sha256(sbomText)}  sbom\\.cdx\\.json$`, 'm'));
    const inv = JSON.parse(entry(entries, 'bundle.json').data.toString('utf8'));
    const bom = JSON.parse(sbomText);
    assert.equal(bom.bomFormat, 'CycloneDX');
    assert.equal(bom.specVersion, '1.5');
    assert.equal(bom.version, 1);
    assert.match(bom.serialNumber, /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(bom.metadata.timestamp, new Date(inv.sourceDateEpoch * 1000).toISOString().replace('.000Z', 'Z'));
    assert.equal(bom.metadata.component.name, top);
    assert.equal(bom.components.length, inv.images.list.length + inv.binaries.length);
    for (const img of inv.images.list) {
      const c = bom.components.find((x: { purl: string }) => x.purl === img.purl);
      assert.ok(c, img.ref);
      assert.equal(c.type, 'container');
      assert.deepEqual(c.hashes, [{ alg: 'SHA-256', content: img.manifestDigest.slice(7) }]);
      assert.equal(c['bom-ref'], img.purl);
      assert.match(c.purl, /^pkg:oci\//);
    }
    for (const bin of inv.binaries) {
      const c = bom.components.find((x: { purl: string }) => x.purl === bin.purl);
      assert.ok(c, bin.name);
      assert.deepEqual(c.hashes, [{ alg: 'SHA-256', content: bin.sha256 }]);
      assert.equal(c.version, bin.version);
      assert.match(c.purl, /^pkg:generic\//);
    }
    const refs = bom.components.map((c: { 'bom-ref': string }) => c['bom-ref']);
    assert.equal(new Set(refs).size, refs.length, 'bom-refs are unique');
    // the serial number is derived from the content: same inventory, same serial; different inventory, different serial
    assert.deepEqual(makeSbom(inv), bom);
    assert.notEqual((makeSbom({ ...inv, name: 'other' }) as { serialNumber: string }).serialNumber, bom.serialNumber);
    // verify accepts the bundle with its SBOM (listed in SHA256SUMS, not in bundle.json's files)
    const v = await cli(['verify', file]);
    assert.equal(v.code, 0, v.out);
    assert.match((await cli(['inspect', file])).out, /with sbom\.cdx\.json/);
  }
  // without --sbom there is none
  const plain = readTarBuffer(await readFile(cloud)).map((e) => e.path);
  assert.ok(!plain.some((p) => p.endsWith('sbom.cdx.json')));
});

test('uuidV5 matches the RFC 4122 example (DNS namespace, www.example.com)', () => {
  assert.equal(uuidV5('www.example.com', '6ba7b810-9dad-11d1-80b4-00c04fd430c8'), '2ed6657d-e927-568b-95e1-2665a8aea6a2');
});
