import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRegistryEngine, parseRegistriesConfig } from '../../src/engines/registry/index.js';
import { parseArch } from '../../src/platform.js';
import { pushFixtureSet, type FixtureSet } from '../harness/fixtures.js';
import { answerFromRegistry, startProxy, requestKind, type TestProxy } from '../harness/proxy.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

/*
 * A build's bundles collect on one engine at once: `--concurrency` bounds the blob downloads of all of
 * them together (it once bounded each collect, so six bundles ran up to 24 downloads and their buffers
 * at once), and the earlier collect's waiting downloads go first (its archive is written first). The
 * proxy holds every blob GET for a while and counts how many are open at once.
 */
let reg: TestRegistry;
let proxy: TestProxy;
let fx: FixtureSet;
let work: string;
let open = 0;
let most = 0;
const order: string[] = [];

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kp-shared-limit-'));
  reg = await startRegistry();
  fx = await pushFixtureSet(reg.url, [
    { repo: 'kubeedge/first', tag: 'v1', format: 'oci', platforms: ['linux/arm64'], layers: ['f-1', 'f-2', 'f-3'] },
    { repo: 'kubeedge/second', tag: 'v1', format: 'oci', platforms: ['linux/arm64'], layers: ['s-1', 's-2', 's-3'] },
  ]);
  // Layers only: an image's config is fetched while it is resolved, which takes the manifest requests' slots.
  const layers = new Set(fx.images.flatMap((i) => i.platforms[0]!.layers.map((l) => l.digest)));
  const handler = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (req.method !== 'GET' || requestKind(req.url ?? '') !== 'blob') return false;
    const digest = req.url!.replace(/^.*\/blobs\//, '');
    const layer = layers.has(digest);
    if (layer) open++;
    most = Math.max(most, open);
    order.push(digest);
    void (async () => {
      await new Promise((r) => setTimeout(r, 40));
      res.on('finish', () => {
        if (layer) open--;
      });
      await answerFromRegistry(reg.url, req, res);
    })();
    return true;
  };
  proxy = await startProxy(reg.url, { handler });
});

after(async () => {
  await proxy?.close();
  await reg?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

test('two collects on one engine at once download at most --concurrency blobs in all, the first collect\'s first', async () => {
  const registries = parseRegistriesConfig(`mirrors:\n  docker.io:\n    endpoint: ["${proxy.url}"]\n`);
  const engine = createRegistryEngine({ registries, offline: true });
  const req = (image: string) => ({ images: [image], platform: parseArch('arm64'), cacheDir: join(work, 'cache'), concurrency: 2 });
  try {
    const a = await engine.collect(req('kubeedge/first:v1'));
    const b = await engine.collect(req('kubeedge/second:v1'));
    await Promise.all([a.done, b.done]);
  } finally {
    await engine.close();
  }
  const blobsOf = (repo: string) => {
    const p = fx.image(repo).platforms[0]!;
    return new Set([p.config, ...p.layers].map((x) => x.digest));
  };
  const first = blobsOf('kubeedge/first');
  const second = blobsOf('kubeedge/second');
  assert.equal(order.length, first.size + second.size, `each blob fetched once: ${order.join(' ')}`);
  assert.ok(most <= 2, `${most} layer downloads at once with --concurrency 2 over two collects`);
  assert.equal(most, 2, 'the two slots are used');
  // The first collect's layers were all queued before the second's were: none of the second's starts
  // before the first's last one did (its config is fetched while it is resolved, before any layer).
  const layersOf = (repo: string) => new Set(fx.image(repo).platforms[0]!.layers.map((x) => x.digest));
  const lastFirst = Math.max(...[...layersOf('kubeedge/first')].map((d) => order.indexOf(d)));
  const firstSecond = Math.min(...[...layersOf('kubeedge/second')].map((d) => order.indexOf(d)));
  assert.ok(lastFirst < firstSecond, `order: ${order.map((d) => (first.has(d) ? 'first' : second.has(d) ? 'second' : '?')).join(' ')}`);
});
