import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRegistryEngine, parseRegistriesConfig, type RegistriesConfig } from '../../src/engines/registry/index.js';
import { UserError } from '../../src/errors.js';
import { parseArch } from '../../src/platform.js';
import { extractArchive } from '../harness/archive.js';
import { pushFixtureSet, type FixtureSet } from '../harness/fixtures.js';
import { startProxy, type FaultRule, type TestProxy } from '../harness/proxy.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

/** Fault injection (429, 5xx, dropped connections, ignored Range) by a proxy in front of a real registry. */
describe('registry engine retries and resumes', () => {
  let reg: TestRegistry;
  let proxy: TestProxy;
  let fx: FixtureSet;
  let work: string;
  let registries: RegistriesConfig;
  let n = 0;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kp-faults-'));
    reg = await startRegistry();
    proxy = await startProxy(reg.url);
    fx = await pushFixtureSet(reg.url, [{ repo: 'kubeedge/faulty', tag: 'v1', format: 'oci', platforms: ['linux/amd64', 'linux/arm64'], layers: ['f-base', 'f-big'] }]);
    registries = parseRegistriesConfig(`mirrors:\n  docker.io:\n    endpoint: ["${proxy.url}"]\n`);
  });
  after(async () => {
    await proxy?.close();
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });
  beforeEach(() => {
    proxy.reset();
    proxy.setRule(undefined);
  });

  const arm64 = () => fx.image('kubeedge/faulty').platforms.find((p) => p.platform === 'linux/arm64')!;
  const build = async (attempts = 4) => {
    const e = createRegistryEngine({ registries, offline: true, retry: { attempts, baseDelayMs: 20, maxDelayMs: 5_000 } });
    try {
      return await e.archive({
        images: ['kubeedge/faulty:v1'],
        platform: parseArch('arm64'),
        outFile: join(work, `out-${++n}.tar`),
        cacheDir: join(work, `cache-${n}`), // cold cache every time
        mtime: 0,
        concurrency: 2,
      });
    } finally {
      await e.close();
    }
  };
  const blobGets = (digest: string) => proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${digest}`));
  /** The first `times` GETs of `digest` get `action`; later ones pass. */
  const failBlob = (digest: string, times: number, action: ReturnType<FaultRule>): FaultRule => (req, seen) => {
    if (req.method === 'GET' && req.url?.endsWith(`/blobs/${digest}`) && seen.filter((s) => s.path === req.url).length <= times) return action;
    return undefined;
  };

  it('waits as long as Retry-After says after a 429, then succeeds', async () => {
    const layer = arm64().layers[1]!;
    proxy.setRule(failBlob(layer.digest, 1, { type: 'respond', status: 429, headers: { 'retry-after': '1' }, body: '{"errors":[{"code":"TOOMANYREQUESTS"}]}' }));
    const res = await build();
    const gets = blobGets(layer.digest);
    assert.deepEqual(gets.map((g) => g.status), [429, 200]);
    assert.ok(gets[1]!.at - gets[0]!.at >= 950, `retried after ${gets[1]!.at - gets[0]!.at} ms, Retry-After was 1 s`);
    assert.equal(res.images[0]!.layers[1]!.digest, layer.digest);
  });

  it('retries 5xx answers with backoff and gives up after the configured tries with a clear error', async () => {
    const layer = arm64().layers[0]!;
    proxy.setRule(failBlob(layer.digest, 2, { type: 'respond', status: 503, body: 'overloaded' }));
    await build();
    assert.deepEqual(blobGets(layer.digest).map((g) => g.status), [503, 503, 200]);

    proxy.reset();
    proxy.setRule(failBlob(layer.digest, 100, { type: 'respond', status: 500, body: 'boom' }));
    await assert.rejects(build(3), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.equal(err.code, 'registry', err.message);
      assert.match(err.message, new RegExp(`layer ${layer.digest} of docker\\.io/kubeedge/faulty:v1 failed: HTTP 500 from http://127\\.0\\.0\\.1:\\d+/v2/kubeedge/faulty/blobs/${layer.digest}: boom`));
      return true;
    });
    assert.equal(blobGets(layer.digest).length, 3, 'tries are bounded by retry.attempts');
  });

  it('resumes a blob whose connection dropped mid-body with a Range request', async () => {
    const layer = arm64().layers[1]!;
    assert.ok(layer.size > 3000, `fixture layer too small (${layer.size})`);
    proxy.setRule(failBlob(layer.digest, 1, { type: 'forward', cutAfterBytes: 2000 }));
    const res = await build();
    const gets = blobGets(layer.digest);
    assert.equal(gets.length, 2);
    assert.equal(gets[0]!.headers.range, undefined);
    assert.equal(gets[1]!.headers.range, 'bytes=2000-');
    assert.equal(gets[1]!.status, 206);
    const a = await extractArchive(res.file);
    assert.ok((await a.readBlob(layer.digest)).equals(fx.blobs.get(layer.digest)!.data));
    await rm(a.dir, { recursive: true, force: true });
  });

  it('starts the blob over when the server ignores Range, and still verifies it', async () => {
    const layer = arm64().layers[1]!;
    proxy.setRule((req, seen) => {
      if (req.method !== 'GET' || !req.url?.endsWith(`/blobs/${layer.digest}`)) return undefined;
      const nth = seen.filter((s) => s.path === req.url).length;
      return nth === 1 ? { type: 'forward', cutAfterBytes: 1500 } : { type: 'forward', dropRequestHeaders: ['range'] };
    });
    const res = await build();
    const gets = blobGets(layer.digest);
    assert.deepEqual(gets.map((g) => g.status), [200, 200]);
    assert.equal(gets[1]!.headers.range, 'bytes=1500-', 'the engine asked for a range');
    const a = await extractArchive(res.file);
    assert.ok((await a.readBlob(layer.digest)).equals(fx.blobs.get(layer.digest)!.data));
    await rm(a.dir, { recursive: true, force: true });
  });

  it('retries a manifest request whose connection was dropped before any answer', async () => {
    proxy.setRule((req, seen) => (req.url?.endsWith('/manifests/v1') && seen.filter((s) => s.path === req.url).length === 1 ? { type: 'drop' } : undefined));
    const res = await build();
    assert.equal(proxy.requests.filter((r) => r.path.endsWith('/manifests/v1')).length, 2);
    assert.equal(res.images[0]!.manifestDigest, arm64().manifest.digest);
  });
});
