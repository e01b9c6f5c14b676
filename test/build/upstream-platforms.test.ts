import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { parse as parseYaml } from 'yaml';
import { runCli } from '../../src/cli.js';
import { captureIo } from '../harness/io.js';
import { startBundleWorldWith, type BundleWorld, type WorldImage, type WorldImages } from '../harness/bundle-world.js';
import { UPSTREAM_PLATFORMS, upstreamFixtureSpecs } from '../harness/fixtures.js';
import { assertImagesComplete, importArchive, listImages, startContainerd, type TestContainerd } from '../harness/containerd.js';

/**
 * Every image of manifests/versions.yaml, each with the platform set it publishes upstream (fixtures.ts
 * UPSTREAM_PLATFORMS, cited in docs/upstream.md): `build --arch amd64,arm64,arm` passes, the arm bundles
 * take arm/v6 for the images without arm/v7 (traefik, mosquitto) and say so, and a real containerd
 * imports the arm archives with `--platform linux/arm/v7`.
 */
const COMPONENTS = ['k3s', 'kubeedge', 'edgemesh', 'metricsServer'] as const;
type Entry = string | { ref: string; role?: string };

let world: BundleWorld;
let out: string;
let images: WorldImages;
let allRefs: string[];
let kubeedge: string; // the manifest's KubeEdge version: bundle names and the chart images follow it
const built = new Map<string, string>(); // `${side}-${arch}` -> extracted top dir

const norm = (r: string) => (/^[^/]+\.[^/]+\//.test(r) ? r : `docker.io/${r.includes('/') ? r : `library/${r}`}`);

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = captureIo();
  const code = await runCli(args, io);
  return { code, out: io.outText(), err: io.errText() };
}

before(async () => {
  const doc = parseYaml(await readFile(join(import.meta.dirname, '../../manifests/versions.yaml'), 'utf8')) as { components: Record<string, { version?: string; images?: Record<string, Entry[]> }> };
  kubeedge = doc.components.kubeedge!.version!;
  images = {} as WorldImages;
  const refs = new Set<string>();
  for (const c of COMPONENTS) {
    images[c] = {};
    for (const side of ['cloud', 'edge'] as const) {
      const list = doc.components[c]?.images?.[side];
      if (!list) continue;
      images[c][side] = list.map((e): WorldImage => (typeof e === 'string' ? norm(e) : e.role ? { ref: norm(e.ref), role: e.role } : norm(e.ref)));
      for (const e of list) refs.add(norm(typeof e === 'string' ? e : e.ref));
    }
  }
  // No other component of versions.yaml carries images (else this test would miss them).
  for (const [name, c] of Object.entries(doc.components)) if (!(COMPONENTS as readonly string[]).includes(name)) assert.equal(c.images, undefined, `${name} has images`);
  allRefs = [...refs];
  const specs = [
    ...upstreamFixtureSpecs(allRefs),
    // No image a linux/arm/v7 host runs: arm/v8 is not v7, v6 or v5.
    { repo: 'library/noarm', tag: '1', format: 'oci' as const, platforms: ['linux/amd64' as const, 'linux/arm64' as const, 'linux/arm/v8' as const], layers: ['noarm-bin'] },
  ];
  world = await startBundleWorldWith({ specs, images, kubeedgeVersion: kubeedge });
  out = join(world.work, 'out');
});

after(async () => {
  await world?.stop();
});

test('the fixtures give every image of versions.yaml its upstream platform set', () => {
  for (const ref of allRefs) {
    const repo = ref.replace(/^[^/]+\//, '').replace(/:[^:]+$/, '');
    assert.ok(UPSTREAM_PLATFORMS[repo], `${ref}: no upstream platform set`);
  }
  // The two the issue names: no arm/v7 upstream.
  assert.ok(!UPSTREAM_PLATFORMS['rancher/mirrored-library-traefik']!.platforms.includes('linux/arm/v7'));
  assert.ok(UPSTREAM_PLATFORMS['library/eclipse-mosquitto']!.platforms.includes('linux/arm/v6'));
});

test('build --arch amd64,arm64,arm passes; arm takes arm/v6 where upstream has no v7, and says so per image', async () => {
  // The build's progress lines go to process.stderr (listr2): read them there.
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    lines.push(String(chunk));
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  let r: { code: number; out: string; err: string };
  try {
    r = await world.run(['build', '--arch', 'amd64,arm64,arm', '--out', out, '--cache-dir', join(world.work, 'cache'), '--sbom']);
  } finally {
    process.stderr.write = write;
  }
  assert.equal(r.code, 0, r.err);
  const said = `${r.out}\n${r.err}\n${lines.join('')}`;
  const v6 = allRefs.filter((ref) => {
    const repo = ref.replace(/^[^/]+\//, '').replace(/:[^:]+$/, '');
    const p = UPSTREAM_PLATFORMS[repo]!.platforms;
    return !p.includes('linux/arm/v7') && !p.includes('linux/arm');
  });
  assert.ok(v6.some((x) => x.includes('traefik')) && v6.some((x) => x.includes('mosquitto')), v6.join(','));
  for (const ref of v6) assert.match(said, new RegExp(`${ref.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}.*no linux/arm/v7 image; taking linux/arm/v6`), `no warning line for ${ref}`);

  for (const arch of ['amd64', 'arm64', 'arm']) {
    for (const side of ['cloud', 'edge']) {
      const name = `kubeprepare-${side}-${kubeedge}-linux-${arch === 'arm' ? 'arm' : arch}`;
      const x = join(world.work, `x-${side}-${arch}`);
      await mkdir(x, { recursive: true });
      execFileSync('tar', ['xf', join(out, `${name}.tar`), '-C', x]);
      built.set(`${side}-${arch}`, join(x, name));
      const inv = JSON.parse(await readFile(join(x, name, 'bundle.json'), 'utf8')) as { platform: string; images: { list: { ref: string; platform: string; purl: string }[] } };
      for (const img of inv.images.list) {
        const lower = arch === 'arm' && v6.includes(img.ref);
        const want = arch === 'amd64' ? /^linux\/amd64$/ : arch === 'arm64' ? /^linux\/arm64(\/v8)?$/ : lower ? /^linux\/arm\/v6$/ : /^linux\/arm(\/v7)?$/;
        assert.match(img.platform, want, `${name}: ${img.ref}`);
        if (lower) assert.match(img.purl, /arch=arm%2Fv6/, img.purl);
      }
      // verify takes the bundle as built (a compatible variant is no problem).
      const v = await cli(['verify', join(out, `${name}.tar`)]);
      assert.equal(v.code, 0, `${name}: ${v.out}${v.err}`);
    }
  }
});

test('inspect (text and --json) and the SBOM name the platform taken per image', async () => {
  const cloud = join(out, `kubeprepare-cloud-${kubeedge}-linux-arm.tar`);
  const j = await cli(['inspect', cloud, '--json']);
  assert.equal(j.code, 0, j.err);
  const res = JSON.parse(j.out) as { platform: string; images: { ref: string; platform: string; platformExact: boolean }[] };
  const traefik = res.images.find((i) => i.ref.includes('traefik'))!;
  assert.deepEqual([traefik.platform, traefik.platformExact], ['linux/arm/v6', false]);
  assert.ok(res.images.filter((i) => i !== traefik).every((i) => i.platformExact), JSON.stringify(res.images));
  const t = await cli(['inspect', cloud]);
  assert.match(t.out, /mirrored-library-traefik:2\.11\.24\s+linux\/arm\/v6 \(lower variant, for linux\/arm\/v7\)/);
  const bom = JSON.parse(await readFile(join(built.get('cloud-arm')!, 'sbom.cdx.json'), 'utf8')) as { components: { name: string; properties?: { name: string; value: string }[] }[] };
  const c = bom.components.find((x) => x.name.endsWith('mirrored-library-traefik'))!;
  const prop = (n: string) => c.properties?.find((p) => p.name === n)?.value;
  assert.deepEqual([prop('kubeprepare:platform'), prop('kubeprepare:platformTakenFor')], ['linux/arm/v6', 'linux/arm/v7']);
});

test('a real containerd imports the arm archives with --platform linux/arm/v7: the v6-only images are there and complete', async () => {
  let ctd: TestContainerd | undefined;
  try {
    ctd = await startContainerd();
    for (const side of ['cloud', 'edge']) {
      const dir = built.get(`${side}-arm`)!;
      // index.json names the platform of each image, except one taken for a lower variant (ctr's --platform
      // matcher is OnlyStrict: an arm/v6 entry would be skipped and its content collected).
      const x = join(dir, 'x-images');
      await mkdir(x, { recursive: true });
      execFileSync('tar', ['xf', join(dir, 'images', 'images.tar'), '-C', x, 'index.json']);
      const index = JSON.parse(await readFile(join(x, 'index.json'), 'utf8')) as { manifests: { annotations: Record<string, string>; platform?: { variant?: string } }[] };
      for (const m of index.manifests) {
        const ref = m.annotations['io.containerd.image.name']!;
        assert.equal(m.platform === undefined, /traefik|mosquitto/.test(ref), `${ref}: ${JSON.stringify(m.platform)}`);
      }
      await importArchive(ctd, join(dir, 'images', 'images.tar'), 'linux/arm/v7');
      const inv = JSON.parse(await readFile(join(dir, 'bundle.json'), 'utf8')) as { images: { list: { ref: string }[] } };
      const { rows } = await listImages(ctd);
      for (const img of inv.images.list) assert.ok(rows.some((r) => r[0] === img.ref), `${side}: ${img.ref} not in ctr images ls`);
      await assertImagesComplete(ctd, inv.images.list.map((i) => i.ref));
    }
    // The import's lease is gone when ctr returns, and containerd collects what no image references then
    // (an index entry skipped by the --platform matcher leaves its blobs unreferenced: 0/N). Complete here.
    // The arm/v6 image itself (by digest; ctr 1.6's PLATFORMS column reads a manifest's config without its
    // variant, images.Platforms: "platforms.Normalize(ocispec.Platform{OS: image.OS, Architecture: image.Architecture})").
    const inv = JSON.parse(await readFile(join(built.get('edge-arm')!, 'bundle.json'), 'utf8')) as { images: { list: { ref: string; platform: string; manifestDigest: string }[] } };
    const want = inv.images.list.find((i) => i.ref.includes('eclipse-mosquitto'))!;
    assert.equal(want.platform, 'linux/arm/v6');
    const mosq = (await listImages(ctd)).rows.find((r) => r[0] === want.ref);
    assert.ok(mosq, 'mosquitto is not in ctr images ls');
    assert.equal(mosq[2], want.manifestDigest);
    await assertImagesComplete(ctd, [want.ref]);
  } finally {
    await ctd?.stop();
  }
});

test('an image with no platform an arm/v7 host runs fails the build, listing the platforms it has', async () => {
  const text = await readFile(world.manifestPath, 'utf8');
  const other = join(world.work, 'noarm.yaml');
  await writeFile(other, text.replace('      cloud: [', '      cloud: ["docker.io/library/noarm:1",'));
  const r = await cli(['build', '--arch', 'arm', '--manifest', other, '--out', join(world.work, 'out-noarm'), '--cache-dir', join(world.work, 'cache')]);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /docker\.io\/library\/noarm:1 has no image for linux\/arm\/v7; it has: linux\/amd64, linux\/arm\/v8, linux\/arm64/);
});
