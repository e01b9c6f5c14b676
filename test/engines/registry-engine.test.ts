import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRegistryEngine, parseRegistriesConfig, type RegistriesConfig } from '../../src/engines/registry/index.js';
import type { ImageArchiveRequest } from '../../src/engines/types.js';
import { UserError } from '../../src/errors.js';
import { parseArch } from '../../src/platform.js';
import type { ProgressSink } from '../../src/progress/sink.js';
import { sha256File } from '../../src/util/hash.js';
import { extractArchive } from '../harness/archive.js';
import { pushFixtureSet, standardFixtureSpecs, type FixtureSet } from '../harness/fixtures.js';
import { freePort } from '../harness/ports.js';
import { startProxy, type TestProxy } from '../harness/proxy.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

const MTIME = 1_700_000_000;

describe('registry engine against a real docker-registry', () => {
  let reg: TestRegistry;
  let k8sReg: TestRegistry;
  let proxy: TestProxy;
  let fx: FixtureSet;
  let k8sFx: FixtureSet;
  let work: string;
  let registries: RegistriesConfig;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kp-engine-'));
    reg = await startRegistry();
    k8sReg = await startRegistry();
    proxy = await startProxy(reg.url);
    fx = await pushFixtureSet(reg.url, [
      ...standardFixtureSpecs(),
      { repo: 'kubeedge/tamper', tag: '1', format: 'oci', platforms: ['linux/arm64'], layers: ['alpine-base', 'tamper-bin'] },
    ]);
    // registry.k8s.io images live under k8s/ in the second registry (mirror rewrite).
    k8sFx = await pushFixtureSet(k8sReg.url, [
      { repo: 'k8s/metrics-server/metrics-server', tag: 'v0.7.2', format: 'oci', platforms: ['linux/amd64', 'linux/arm64'], layers: ['distroless', 'ms-bin'] },
    ]);
    registries = parseRegistriesConfig(
      [
        'mirrors:',
        '  docker.io:',
        `    endpoint: ["${proxy.url}"]`,
        '  registry.k8s.io:',
        `    endpoint: ["${k8sReg.url}"]`,
        '    rewrite:',
        '      "^(.*)$": "k8s/$1"',
      ].join('\n'),
    );
  });

  after(async () => {
    await proxy?.close();
    await reg?.stop();
    await k8sReg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const engine = () => createRegistryEngine({ registries, offline: true, retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 200 } });
  let n = 0;
  const request = (images: string[], arch: string, extra: Partial<ImageArchiveRequest> = {}): ImageArchiveRequest => ({
    images,
    platform: parseArch(arch),
    outFile: join(work, `out-${++n}.tar`),
    cacheDir: join(work, 'cache'),
    mtime: MTIME,
    ...extra,
  });
  const cloudRefs = ['docker.io/kubeedge/cloudcore:v1.22.0', 'kubeedge/edgemesh-agent:v1.17.0', 'docker.io/rancher/mirrored-pause:3.6'];

  it('writes one OCI-layout + docker archive with each blob once, for the requested platform', async () => {
    const e = engine();
    const events: string[] = [];
    const sink: ProgressSink = {
      start: (item, total) => events.push(`start ${item} ${total}`),
      bytes: () => {},
      done: (item) => events.push(`done ${item}`),
      note: () => {},
    };
    proxy.reset();
    const res = await e.archive(request(cloudRefs, 'arm64', { progress: sink }));
    await e.close();
    await e.close(); // safe twice

    const canon = ['docker.io/kubeedge/cloudcore:v1.22.0', 'docker.io/kubeedge/edgemesh-agent:v1.17.0', 'docker.io/rancher/mirrored-pause:3.6'];
    assert.deepEqual(res.images.map((i) => i.ref), canon);
    assert.equal(res.sha256, await sha256File(res.file));
    assert.equal(res.size, (await stat(res.file)).size);

    const repos = ['kubeedge/cloudcore', 'kubeedge/edgemesh-agent', 'rancher/mirrored-pause'];
    const expected = repos.map((r) => fx.image(r).platforms.find((p) => p.platform === 'linux/arm64')!);
    res.images.forEach((img, i) => {
      assert.equal(img.manifestDigest, expected[i]!.manifest.digest);
      assert.equal(img.configDigest, expected[i]!.config.digest);
      assert.equal(img.platform.architecture, 'arm64');
      assert.deepEqual(img.layers.map((l) => l.digest), expected[i]!.layers.map((l) => l.digest));
    });

    const a = await extractArchive(res.file);
    assert.deepEqual(a.ociLayout, { imageLayoutVersion: '1.0.0' });
    // index.json: one entry per image, the platform manifest, with names for containerd and OCI tools.
    assert.equal(a.index.manifests.length, 3);
    a.index.manifests.forEach((m, i) => {
      assert.equal(m.digest, expected[i]!.manifest.digest);
      assert.equal(m.platform?.architecture, 'arm64');
      assert.equal(m.annotations?.['io.containerd.image.name'], canon[i]);
      assert.equal(m.annotations?.['org.opencontainers.image.ref.name'], canon[i]!.split(':').pop());
    });
    // manifest.json for docker load.
    assert.deepEqual(
      a.dockerManifest.map((m) => m.RepoTags),
      canon.map((c) => [c]),
    );
    a.dockerManifest.forEach((m, i) => {
      assert.equal(m.Config, `blobs/sha256/${expected[i]!.config.digest.slice(7)}`);
      assert.deepEqual(m.Layers, expected[i]!.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`));
    });
    // Every blob once, byte-identical to what was pushed (original compression).
    const blobEntries = a.entries.filter((x) => x.path.startsWith('blobs/sha256/') && x.type === 'File');
    const names = blobEntries.map((x) => x.path);
    assert.equal(new Set(names).size, names.length, 'a blob appears twice');
    const wantDigests = new Set(expected.flatMap((p) => [p.manifest.digest, p.config.digest, ...p.layers.map((l) => l.digest)]));
    assert.deepEqual(new Set(names.map((p) => `sha256:${p.split('/').pop()}`)), wantDigests);
    for (const d of wantDigests) {
      const data = await a.readBlob(d);
      assert.equal(`sha256:${createHash('sha256').update(data).digest('hex')}`, d);
      assert.ok(fx.blobs.get(d)!.data.equals(data));
    }
    // alpine-base is shared by cloudcore and edgemesh: stored once, counted twice in totalBlobBytes.
    assert.ok(res.uniqueBlobBytes < res.totalBlobBytes);
    const unique = [...wantDigests].reduce((s, d) => s + fx.blobs.get(d)!.size, 0);
    assert.equal(res.uniqueBlobBytes, unique);
    // Sorted entries, fixed mtime.
    const paths = a.entries.map((x) => x.path.replace(/\/$/, ''));
    assert.deepEqual(paths, [...paths].sort());
    assert.ok(a.entries.every((x) => x.mtime === MTIME));
    // Each unique blob was fetched once, although shared between images; the attestation was not fetched.
    const blobGets = proxy.requests.filter((r) => r.kind === 'blob' && r.method === 'GET').map((r) => r.path.split('/').pop()!);
    assert.equal(blobGets.length, new Set(blobGets).size, `a blob was fetched twice: ${blobGets.join(' ')}`);
    const attestation = fx.image('kubeedge/cloudcore').extra.map((b) => b.digest);
    assert.ok(!proxy.requests.some((r) => attestation.some((d) => r.path.endsWith(d))), 'attestation content was fetched');
    // Progress: start and done per image, start with the image's total bytes.
    for (const [i, c] of canon.entries()) {
      assert.ok(events.includes(`start ${c} ${res.images[i]!.size}`), events.join('\n'));
      assert.ok(events.includes(`done ${c}`));
    }
    await rm(a.dir, { recursive: true, force: true });
  });

  it('rebuilds from the cache with zero blob requests and identical bytes; a fresh cache gives identical bytes too', async () => {
    const e = engine();
    const first = await e.archive(request(cloudRefs, 'arm64'));
    proxy.reset();
    const second = await e.archive(request(cloudRefs, 'arm64'));
    await e.close();
    assert.equal(proxy.count('blob'), 0, `blob requests on a warm rebuild: ${proxy.requests.map((r) => r.path).join(' ')}`);
    assert.equal(proxy.count('blob', 'HEAD'), 0);
    // Only the tags are asked again (platform manifests come from the cache by digest).
    assert.equal(proxy.count('manifest'), cloudRefs.length);
    assert.equal(second.sha256, first.sha256);
    assert.ok((await readFile(first.file)).equals(await readFile(second.file)));

    const e2 = engine();
    const fresh = await e2.archive(request(cloudRefs, 'arm64', { cacheDir: join(work, 'cache-fresh') }));
    await e2.close();
    assert.equal(fresh.sha256, first.sha256);
  });

  it('selects arm/v7 and amd64 from OCI indexes and Docker manifest lists', async () => {
    const e = engine();
    for (const [arch, plat] of [
      ['arm', 'linux/arm/v7'],
      ['amd64', 'linux/amd64'],
    ] as const) {
      const res = await e.archive(request(cloudRefs, arch));
      res.images.forEach((img, i) => {
        const repo = ['kubeedge/cloudcore', 'kubeedge/edgemesh-agent', 'rancher/mirrored-pause'][i]!;
        const want = fx.image(repo).platforms.find((p) => p.platform === plat)!;
        assert.equal(img.configDigest, want.config.digest, `${repo} ${plat}`);
        assert.equal(img.platform.architecture, plat.split('/')[1]);
      });
    }
    // A single-platform image (no index) for the architecture it has.
    const single = await e.archive(request(['amd64only:1.0'], 'amd64'));
    assert.equal(single.images[0]!.ref, 'docker.io/library/amd64only:1.0');
    assert.equal(single.images[0]!.configDigest, fx.image('library/amd64only').platforms[0]!.config.digest);
    await e.close();
  });

  it('refuses a platform the image does not have, listing the platforms that exist, and writes nothing', async () => {
    const e = engine();
    const r1 = request(['docker.io/library/amd64only:1.0'], 'arm64');
    await assert.rejects(e.archive(r1), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.equal(err.code, 'platform');
      assert.match(err.message, /docker\.io\/library\/amd64only:1\.0 has no image for linux\/arm64; it has: linux\/amd64/);
      return true;
    });
    assert.equal(existsSync(r1.outFile), false);
    const r2 = request(['kubeedge/cloudcore:v1.22.0'], 'arm/v6');
    await assert.rejects(e.archive(r2), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.equal(err.code, 'platform');
      assert.match(err.message, /has no image for linux\/arm\/v6; it has: linux\/amd64, linux\/arm\/v7, linux\/arm64$/);
      assert.doesNotMatch(err.message, /unknown/);
      return true;
    });
    assert.equal(existsSync(r2.outFile), false);
    await e.close();
  });

  it('pulls registry.k8s.io through a rewriting mirror and keeps the canonical name', async () => {
    const e = engine();
    const res = await e.archive(request(['registry.k8s.io/metrics-server/metrics-server:v0.7.2'], 'arm64'));
    await e.close();
    const want = k8sFx.images[0]!.platforms.find((p) => p.platform === 'linux/arm64')!;
    assert.equal(res.images[0]!.configDigest, want.config.digest);
    const a = await extractArchive(res.file);
    assert.equal(a.index.manifests[0]!.annotations?.['io.containerd.image.name'], 'registry.k8s.io/metrics-server/metrics-server:v0.7.2');
    assert.deepEqual(a.dockerManifest[0]!.RepoTags, ['registry.k8s.io/metrics-server/metrics-server:v0.7.2']);
    await rm(a.dir, { recursive: true, force: true });
  });

  it('archives a digest-pinned reference (no tag: no ref.name, no RepoTags)', async () => {
    const top = fx.image('kubeedge/cloudcore').top.digest;
    const e = engine();
    const res = await e.archive(request([`kubeedge/cloudcore@${top}`], 'arm64'));
    await e.close();
    const a = await extractArchive(res.file);
    assert.equal(a.index.manifests[0]!.annotations?.['io.containerd.image.name'], `docker.io/kubeedge/cloudcore@${top}`);
    assert.equal(a.index.manifests[0]!.annotations?.['org.opencontainers.image.ref.name'], undefined);
    assert.deepEqual(a.dockerManifest[0]!.RepoTags, []);
    await rm(a.dir, { recursive: true, force: true });
  });

  it('fails verification of a tampered blob, naming image, blob and both digests; caches nothing and writes nothing', async () => {
    const img = fx.image('kubeedge/tamper');
    const layer = img.platforms[0]!.layers[1]!;
    const file = reg.blobDataPath(layer.digest);
    const original = await readFile(file);
    const tampered = Buffer.from(original);
    tampered[tampered.length - 10] = tampered[tampered.length - 10]! ^ 0xff; // same size, different bytes
    await writeFile(file, tampered);
    const actual = `sha256:${createHash('sha256').update(tampered).digest('hex')}`;
    const cacheDir = join(work, 'cache-tamper');
    try {
      const e = engine();
      const r = request(['kubeedge/tamper:1'], 'arm64', { cacheDir });
      await assert.rejects(e.archive(r), (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.equal(err.code, 'digest-mismatch');
        assert.equal(err.kind, 'runtime');
        assert.ok(err.message.includes('docker.io/kubeedge/tamper:1'), err.message);
        assert.ok(err.message.includes(`expected ${layer.digest}`), err.message);
        assert.ok(err.message.includes(`got ${actual}`), err.message);
        return true;
      });
      await e.close();
      assert.equal(existsSync(r.outFile), false, 'an output file was written');
      assert.equal(existsSync(join(cacheDir, 'blobs', 'sha256', layer.digest.slice(7))), false, 'the tampered blob entered the cache');
      assert.deepEqual(await readdir(join(cacheDir, 'tmp')), [], 'temp files left behind');
      assert.deepEqual((await readdir(r.outFile.replace(/[^/]+$/, ''))).filter((f) => f.includes('.partial')), []);
    } finally {
      await writeFile(file, original);
    }
  });

  it('resumes an aborted build without refetching verified blobs', async () => {
    const cacheDir = join(work, 'cache-abort');
    const ac = new AbortController();
    let seen = 0;
    const sink: ProgressSink = {
      start() {},
      bytes(_item, nb) {
        seen += nb;
        // Abort once some blobs are through.
        if (seen > 8_000 && !ac.signal.aborted) ac.abort(new Error('user pressed ctrl-c'));
      },
      done() {},
      note() {},
    };
    proxy.reset();
    const e = engine();
    const r1 = request(cloudRefs, 'amd64', { cacheDir, signal: ac.signal, progress: sink, concurrency: 1 });
    await assert.rejects(e.archive(r1), /ctrl-c/);
    assert.equal(existsSync(r1.outFile), false);
    const firstRun = proxy.requests.filter((r) => r.kind === 'blob' && r.method === 'GET').map((r) => `sha256:${r.path.split('sha256:')[1]}`);
    const cached = new Set((await readdir(join(cacheDir, 'blobs', 'sha256'))).map((h) => `sha256:${h}`));
    assert.ok(firstRun.length > 0, 'the first run fetched nothing before the abort');
    assert.ok([...cached].some((d) => firstRun.includes(d)), 'no blob was completed before the abort');

    proxy.reset();
    const res = await e.archive({ ...r1, signal: undefined, progress: undefined, outFile: join(work, 'resumed.tar') });
    await e.close();
    const secondRun = proxy.requests.filter((r) => r.kind === 'blob' && r.method === 'GET').map((r) => `sha256:${r.path.split('sha256:')[1]}`);
    for (const d of secondRun) assert.ok(!cached.has(d), `verified blob ${d} was fetched again`);
    const all = new Set(res.images.flatMap((i) => [i.configDigest, ...i.layers.map((l) => l.digest)]));
    const missing = [...all].filter((d) => !cached.has(d));
    assert.deepEqual(new Set(secondRun), new Set(missing));
  });

  it('fails fast when the only mirror is down and offline mode forbids the upstream registry', async () => {
    const deadPort = await freePort();
    const cfg = parseRegistriesConfig(`mirrors:\n  docker.io:\n    endpoint: ["http://127.0.0.1:${deadPort}"]\n`);
    const e = createRegistryEngine({ registries: cfg, offline: true, retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 } });
    const t0 = Date.now();
    await assert.rejects(e.archive(request(['kubeedge/cloudcore:v1.22.0'], 'arm64')), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.equal(err.code, 'network');
      assert.match(err.message, new RegExp(`cannot reach http://127\\.0\\.0\\.1:${deadPort}/v2 for docker\\.io/kubeedge/cloudcore:v1\\.22\\.0: ECONNREFUSED`));
      return true;
    });
    assert.ok(Date.now() - t0 < 5_000, 'took too long to fail');
    // Offline without any loopback mirror: refused before any connection.
    const e2 = createRegistryEngine({ offline: true });
    await assert.rejects(e2.archive(request(['kubeedge/cloudcore:v1.22.0'], 'arm64')), /no usable endpoint for registry docker\.io: offline mode forbids https:\/\/registry-1\.docker\.io/);
    await e.close();
    await e2.close();
  });

  it('tries the mirror endpoints in order, skipping one that is down', async () => {
    const deadPort = await freePort();
    const cfg = parseRegistriesConfig(`mirrors:\n  docker.io:\n    endpoint: ["http://127.0.0.1:${deadPort}", "${reg.url}"]\n`);
    const e = createRegistryEngine({ registries: cfg, offline: true, retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 50 } });
    const res = await e.archive(request(['rancher/mirrored-pause:3.6'], 'arm64', { cacheDir: join(work, 'cache-order') }));
    await e.close();
    assert.equal(res.images[0]!.configDigest, fx.image('rancher/mirrored-pause').platforms.find((p) => p.platform === 'linux/arm64')!.config.digest);
  });

  it('runs two builds sharing one cache at the same time', async () => {
    const cacheDir = join(work, 'cache-parallel');
    const [a, b] = await Promise.all(
      [1, 2].map(async () => {
        const e = engine();
        try {
          return await e.archive(request(cloudRefs, 'arm', { cacheDir, concurrency: 3 }));
        } finally {
          await e.close();
        }
      }),
    );
    assert.equal(a!.sha256, b!.sha256);
    assert.deepEqual(await readdir(join(cacheDir, 'tmp')), []);
  });

  it('reports a missing tag as not found at the mirror', async () => {
    const e = engine();
    await assert.rejects(e.archive(request(['kubeedge/cloudcore:v9.9.9'], 'arm64')), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.equal(err.code, 'not-found');
      assert.match(err.message, /docker\.io\/kubeedge\/cloudcore:v9\.9\.9 not found at http:\/\/127\.0\.0\.1:\d+\/v2\/kubeedge\/cloudcore\/manifests\/v9\.9\.9 \(HTTP 404/);
      return true;
    });
    await e.close();
  });
});
