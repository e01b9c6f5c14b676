import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRegistryEngine, parseRegistriesConfig, type RegistriesConfig } from '../../src/engines/registry/index.js';
import { UserError } from '../../src/errors.js';
import { parseArch } from '../../src/platform.js';
import { extractArchive } from '../harness/archive.js';
import { pushFixtureSet, type FixtureSet } from '../harness/fixtures.js';
import { alterBodies, flipByte, replaceBody, startProxy, type TestProxy } from '../harness/proxy.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

/**
 * Every digest is checked, not only layers (issue 12 item 6), and a cache entry is checked again when it
 * is reused (item 4): a proxy in front of a real docker-registry alters response bodies, and tests
 * change bytes of cache entries in place (same size).
 */
describe('registry engine: every digest and size is verified', () => {
  let reg: TestRegistry;
  let proxy: TestProxy;
  let fx: FixtureSet;
  let work: string;
  let registries: RegistriesConfig;
  let n = 0;
  const IMAGE = 'docker.io/kubeedge/digests:v1';

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kp-digests-'));
    reg = await startRegistry();
    proxy = await startProxy(reg.url);
    fx = await pushFixtureSet(reg.url, [{ repo: 'kubeedge/digests', tag: 'v1', format: 'oci', platforms: ['linux/amd64', 'linux/arm64'], layers: ['d-base', 'd-app'] }]);
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

  const img = () => fx.image('kubeedge/digests');
  const arm64 = () => img().platforms.find((p) => p.platform === 'linux/arm64')!;
  const newCache = () => join(work, `cache-${++n}`);
  const build = async (ref: string, cacheDir: string) => {
    const e = createRegistryEngine({ registries, offline: true, retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 50 } });
    try {
      return await e.archive({ images: [ref], platform: parseArch('arm64'), outFile: join(work, `out-${++n}`, 'images.tar'), cacheDir, mtime: 0 });
    } finally {
      await e.close();
    }
  };
  const gets = (suffix: string) => proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(suffix)).length;
  const hex = (d: string) => d.replace(/^sha256:/, '');
  /** The engine refused: a UserError matching `re`; no output (nor temp file) beside it; `digest` not in the cache; no temp left in the cache. */
  const refused = async (p: Promise<unknown>, re: RegExp, cacheDir: string, digest: string) => {
    let message = '';
    await assert.rejects(p, (err: unknown) => {
      assert.ok(err instanceof UserError, String(err));
      assert.equal(err.code, 'digest-mismatch', err.message);
      message = err.message;
      assert.match(err.message, re);
      return true;
    });
    const out = join(work, `out-${n}`);
    assert.deepEqual(await readdir(out).catch(() => []), [], `nothing written beside the archive: ${out}`);
    await assert.rejects(stat(join(cacheDir, 'blobs', 'sha256', hex(digest))), `${digest} not cached`);
    assert.deepEqual(await readdir(join(cacheDir, 'tmp')).catch(() => []), [], 'no temp file left in the cache');
    return message;
  };

  it('refuses a platform manifest fetched by digest (index → manifest) whose bytes differ, naming image and both digests', async () => {
    const child = arm64().manifest.digest;
    proxy.setRule(alterBodies(new RegExp(`/manifests/${child}$`), flipByte(-3)));
    const cache = newCache();
    await refused(build('kubeedge/digests:v1', cache), new RegExp(`verification failed for the manifest ${child} of ${IMAGE.replace(/[.]/g, '\\.')} from http://127\\.0\\.0\\.1:\\d+/v2: expected ${child}, got sha256:[a-f0-9]{64}`), cache, child);
    assert.equal(gets(`/manifests/${child}`), 1, 'a wrong answer is refused, not retried until one fits');
  });

  it("refuses a tag's manifest whose bytes differ from the Docker-Content-Digest the registry sent", async () => {
    const top = img().top.digest;
    proxy.setRule(alterBodies(/\/manifests\/v1$/, flipByte(10)));
    const cache = newCache();
    await refused(build('kubeedge/digests:v1', cache), new RegExp(`verification failed for the manifest v1 of docker\\.io/kubeedge/digests:v1 .*: expected ${top}, got sha256:[a-f0-9]{64}`), cache, top);
  });

  it('refuses a digest-pinned reference (ref@sha256:…) whose served manifest differs, and one served with other bytes of the same digest size', async () => {
    const top = img().top.digest;
    proxy.setRule(alterBodies(new RegExp(`/manifests/${top}$`), flipByte(-2)));
    let cache = newCache();
    await refused(build(`kubeedge/digests@${top}`, cache), new RegExp(`verification failed for the manifest ${top} of docker\\.io/kubeedge/digests@${top} .*: expected ${top}, got sha256:[a-f0-9]{64}`), cache, top);
    // Pinned to the platform manifest itself, answered with another valid manifest (the amd64 one).
    const child = arm64().manifest.digest;
    const other = img().platforms.find((p) => p.platform === 'linux/amd64')!.manifest;
    proxy.setRule(alterBodies(new RegExp(`/manifests/${child}$`), replaceBody(other.data)));
    cache = newCache();
    await refused(build(`kubeedge/digests@${child}`, cache), new RegExp(`expected ${child}, got ${other.digest}`), cache, child);
  });

  it('refuses a config blob that does not match its digest (same size), naming image, config and both digests', async () => {
    const cfg = arm64().config;
    proxy.setRule(alterBodies(new RegExp(`/blobs/${cfg.digest}$`), flipByte(5)));
    const cache = newCache();
    await refused(
      build('kubeedge/digests:v1', cache),
      new RegExp(`verification failed for config ${cfg.digest} of docker\\.io/kubeedge/digests:v1: expected ${cfg.digest} \\(${cfg.size} bytes\\), got sha256:[a-f0-9]{64} \\(${cfg.size} bytes\\)`),
      cache,
      cfg.digest,
    );
  });

  it('refuses blobs whose size differs from the descriptor (longer config, shorter layer) at once, naming both sizes', async () => {
    const cfg = arm64().config;
    proxy.setRule(alterBodies(new RegExp(`/blobs/${cfg.digest}$`), (b) => Buffer.concat([b, Buffer.from(' ')])));
    let cache = newCache();
    await refused(build('kubeedge/digests:v1', cache), new RegExp(`size mismatch for config ${cfg.digest} of docker\\.io/kubeedge/digests:v1: the manifest says ${cfg.size} bytes, the registry serves ${cfg.size + 1}`), cache, cfg.digest);
    assert.equal(gets(`/blobs/${cfg.digest}`), 1, 'refused, not retried as a short read');

    proxy.reset();
    const layer = arm64().layers[1]!;
    proxy.setRule(alterBodies(new RegExp(`/blobs/${layer.digest}$`), (b) => b.subarray(0, b.length - 100)));
    cache = newCache();
    await refused(build('kubeedge/digests:v1', cache), new RegExp(`size mismatch for layer ${layer.digest} of docker\\.io/kubeedge/digests:v1: the manifest says ${layer.size} bytes, the registry serves ${layer.size - 100}`), cache, layer.digest);
    assert.equal(gets(`/blobs/${layer.digest}`), 1);
  });

  it('a cached layer, config or manifest with one byte changed (same size) is evicted and fetched again; the archive holds the right bytes', async () => {
    const cache = newCache();
    await build('kubeedge/digests:v1', cache);
    const a = arm64();
    const targets = [a.layers[1]!, a.config, a.manifest];
    for (const t of targets) {
      const file = join(cache, 'blobs', 'sha256', hex(t.digest));
      await writeFile(file, flipByte(Math.floor(t.size / 2))(await readFile(file)));
    }
    proxy.reset();
    const res = await build('kubeedge/digests:v1', cache);
    for (const t of targets) {
      assert.equal(gets(`/${t === a.manifest ? 'manifests' : 'blobs'}/${t.digest}`), 1, `${t.digest} fetched again once`);
      assert.ok((await readFile(join(cache, 'blobs', 'sha256', hex(t.digest)))).equals(t.data), 'the cache entry is repaired');
    }
    assert.equal(gets(`/blobs/${a.layers[0]!.digest}`), 0, 'intact entries are reused');
    const x = await extractArchive(res.file);
    try {
      for (const t of [...a.layers, a.config, a.manifest]) assert.ok((await x.readBlob(t.digest)).equals(t.data), t.digest);
    } finally {
      await rm(x.dir, { recursive: true, force: true });
    }
  });

  it('a corrupt cached layer that cannot be fetched again fails naming the blob, its cache path and the fix; nothing is written', async () => {
    const cache = newCache();
    await build('kubeedge/digests:v1', cache);
    const layer = arm64().layers[0]!;
    const file = join(cache, 'blobs', 'sha256', hex(layer.digest));
    await writeFile(file, flipByte(0)(await readFile(file)));
    proxy.setRule((req) => (req.url?.endsWith(`/blobs/${layer.digest}`) ? { type: 'respond', status: 503, body: 'down' } : undefined));
    let message = '';
    await assert.rejects(build('kubeedge/digests:v1', cache), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.equal(err.code, 'cache', err.message);
      message = `${err.message}\n${err.hint}`;
      return true;
    });
    assert.match(message, new RegExp(`cached blob ${layer.digest} \\(of docker\\.io/kubeedge/digests:v1\\) at ${file.replace(/[.]/g, '\\.')} does not match its digest: got sha256:[a-f0-9]{64} \\(${layer.size} bytes\\); it was removed from the cache; fetching it again failed: .*HTTP 503`));
    assert.match(message, /run with an empty --cache-dir/);
    const out = join(work, `out-${n}`);
    assert.deepEqual(await readdir(out).catch(() => []), [], 'no archive, no temp file');
    await assert.rejects(stat(file), 'the corrupt entry was evicted');
    assert.deepEqual(await readdir(join(cache, 'tmp')), []);
    assert.equal(dirname(file), join(cache, 'blobs', 'sha256'));
  });
});
