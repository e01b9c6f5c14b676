import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRegistryEngine, parseRegistriesConfig } from '../../src/engines/registry/index.js';
import { parseArch } from '../../src/platform.js';
import { extractArchive } from '../harness/archive.js';
import { pushFixtureSet, type FixtureSet } from '../harness/fixtures.js';
import { answerFromRegistry, startProxy, type TestProxy } from '../harness/proxy.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

/*
 * An image's blobs are downloaded as soon as it is resolved, while the other images are still being
 * resolved: the proxy holds the tag manifest of image `slow` until a layer of image `quick` was asked
 * for (or 3 s passed), then answers it from the registry.
 */
let reg: TestRegistry;
let proxy: TestProxy;
let fx: FixtureSet;
let work: string;
let quickLayerFirst: boolean | undefined;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kp-overlap-'));
  reg = await startRegistry();
  fx = await pushFixtureSet(reg.url, [
    { repo: 'kubeedge/quick', tag: 'v1', format: 'oci', platforms: ['linux/arm64'], layers: ['q-base', 'q-app'] },
    { repo: 'kubeedge/slow', tag: 'v1', format: 'oci', platforms: ['linux/arm64'], layers: ['s-base'] },
  ]);
  const quickLayers = new Set(fx.image('kubeedge/quick').platforms[0]!.layers.map((l) => l.digest));
  const handler = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (req.url !== '/v2/kubeedge/slow/manifests/v1') return false;
    const t0 = Date.now();
    const answer = async () => {
      const seen = () => proxy.requests.some((r) => r.method === 'GET' && [...quickLayers].some((d) => r.path.endsWith(`/blobs/${d}`)));
      while (!seen() && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10));
      quickLayerFirst ??= seen();
      await answerFromRegistry(reg.url, req, res);
    };
    void answer();
    return true;
  };
  proxy = await startProxy(reg.url, { handler });
});

after(async () => {
  await proxy?.close();
  await reg?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

test("an image's layers are downloaded while another image is still being resolved; the archive is complete", async () => {
  const registries = parseRegistriesConfig(`mirrors:\n  docker.io:\n    endpoint: ["${proxy.url}"]\n`);
  const engine = createRegistryEngine({ registries, offline: true });
  const outFile = join(work, 'out.tar');
  // What a progress view is told: the early downloads' bytes must not come before every image (and so
  // the total) was announced, or a view's first total lines understate the pull.
  const events: { kind: string; item: string; n?: number }[] = [];
  const progress = {
    start: (item: string, n?: number) => void events.push({ kind: 'start', item, n }),
    bytes: (item: string, n: number) => void events.push({ kind: 'bytes', item, n }),
    done: (item: string) => void events.push({ kind: 'done', item }),
    note: (item: string) => void events.push({ kind: 'note', item }),
  };
  try {
    await engine.archive({
      images: ['kubeedge/quick:v1', 'kubeedge/slow:v1'],
      platform: parseArch('arm64'),
      outFile,
      cacheDir: join(work, 'cache'),
      mtime: 0,
      concurrency: 2,
      progress,
    });
  } finally {
    await engine.close();
  }
  assert.equal(quickLayerFirst, true, "quick's layers waited for slow's manifest: downloads start only once every image is resolved");
  // Every blob of both images is in the archive, byte for byte, and both images are named.
  const x = await extractArchive(outFile);
  for (const r of ['kubeedge/quick', 'kubeedge/slow']) {
    const p = fx.image(r).platforms[0]!;
    for (const b of [p.manifest, p.config, ...p.layers]) assert.ok((await x.readBlob(b.digest)).equals(b.data), `${r}: ${b.digest}`);
  }
  assert.deepEqual(x.index.manifests.map((m) => m.annotations?.['io.containerd.image.name']), ['docker.io/kubeedge/quick:v1', 'docker.io/kubeedge/slow:v1']);
  await rm(x.dir, { recursive: true, force: true });
  // Both images announced first, in request order, with their sizes; then bytes adding up to them.
  const starts = events.filter((e) => e.kind === 'start');
  assert.deepEqual(starts.map((e) => e.item), ['docker.io/kubeedge/quick:v1', 'docker.io/kubeedge/slow:v1']);
  assert.deepEqual(events.slice(0, 2), starts, `the first events announce every image: ${JSON.stringify(events.slice(0, 4))}`);
  for (const r of ['kubeedge/quick', 'kubeedge/slow']) {
    const p = fx.image(r).platforms[0]!;
    const size = [p.config, ...p.layers].reduce((a, b) => a + b.data.length, 0);
    const item = `docker.io/${r}:v1`;
    assert.equal(starts.find((e) => e.item === item)!.n, size, `${item}: announced total`);
    assert.equal(events.filter((e) => e.kind === 'bytes' && e.item === item).reduce((a, e) => a + e.n!, 0), size, `${item}: bytes reported`);
    assert.ok(events.some((e) => e.kind === 'done' && e.item === item), `${item}: done`);
  }
});
