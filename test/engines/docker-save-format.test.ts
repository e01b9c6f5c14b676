import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { TarWriter } from '../../src/archive/tar-writer.js';
import { LayerStore, readDockerSave } from '../../src/engines/docker/index.js';
import { BlobCache } from '../../src/oci/blob-cache.js';
import { UserError } from '../../src/errors.js';
import { fixtureLayer } from '../harness/fixtures.js';

/**
 * `docker save` output forms the installed Docker 20.10 does not write: the OCI layout of Docker ≥ 25
 * (uncompressed layers under blobs/sha256/<diffid>), and a containerd image store's export (gzip blobs
 * as stored). Plus: memory stays flat while a large layer streams through.
 */
const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const hex = (d: string) => d.slice(7);

interface Built {
  stream: PassThrough;
  done: Promise<void>;
}

function ociSave(entries: { path: string; data: Buffer | string }[]): Built {
  const stream = new PassThrough({ highWaterMark: 1 << 16 });
  const done = (async () => {
    const t = new TarWriter(stream, { mtime: 0 });
    await t.addDirectory('blobs');
    await t.addDirectory('blobs/sha256');
    for (const e of entries) await t.addBuffer(e.path, e.data);
    await t.finish();
    stream.end();
  })();
  return { stream, done };
}

function image(layers: { blob: Buffer; diffId: string; mediaType: string }[], arch = 'arm64') {
  const config = JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) }, config: {} });
  const cfgDigest = sha(config);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfgDigest, size: config.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: sha(l.blob), size: l.blob.length })),
  });
  const index = JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(manifest), size: manifest.length }] });
  const dockerManifest = JSON.stringify([{ Config: `blobs/sha256/${hex(cfgDigest)}`, RepoTags: ['x:1'], Layers: layers.map((l) => `blobs/sha256/${hex(sha(l.blob))}`) }]);
  const blobs = new Map<string, Buffer | string>([[cfgDigest, config], [sha(manifest), manifest], ...layers.map((l) => [sha(l.blob), l.blob] as [string, Buffer])]);
  const entries = [...blobs.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([d, data]) => ({ path: `blobs/sha256/${hex(d)}`, data }));
  entries.push({ path: 'index.json', data: index }, { path: 'manifest.json', data: dockerManifest }, { path: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' });
  return { entries, cfgDigest };
}

describe('docker save formats', () => {
  let work: string;
  let store: LayerStore;
  let cache: BlobCache;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kp-docker-save-'));
    cache = new BlobCache(join(work, 'cache'));
    store = new LayerStore(cache, join(work, 'cache'), 1);
    await store.init();
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('reads the OCI layout of Docker ≥ 25 (uncompressed layers) and gzips the layers, keeping the diff_ids', async () => {
    const a = await fixtureLayer('alpine-base', 'linux/arm64');
    const b = await fixtureLayer('cloudcore-bin', 'linux/arm64', 2048); // > 1 MiB: streamed, not buffered
    const layers = [a, b].map((l) => ({ blob: l.tar, diffId: sha(l.tar), mediaType: 'application/vnd.oci.image.layer.v1.tar' }));
    const { entries, cfgDigest } = image(layers);
    const s = ociSave(entries);
    const saved = await readDockerSave(s.stream, { image: 'x:1', imageId: cfgDigest, store });
    await s.done;
    assert.equal(saved.format, 'oci-layout');
    assert.equal(saved.config.digest, cfgDigest);
    assert.deepEqual(saved.layers.map((l) => l.diffId), layers.map((l) => l.diffId));
    for (const [i, l] of saved.layers.entries()) {
      assert.equal(l.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
      const blob = await readFile(cache.path(l.digest));
      assert.equal(sha(blob), l.digest);
      assert.deepEqual(gunzipSync(blob), [a, b][i]!.tar);
    }
  });

  it('keeps gzip layers (a containerd image store export) byte for byte', async () => {
    const l = await fixtureLayer('ke-common', 'linux/amd64');
    const gz = gzipSync(l.tar, { level: 9 });
    const { entries, cfgDigest } = image([{ blob: gz, diffId: sha(l.tar), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }], 'amd64');
    const s = ociSave(entries);
    const saved = await readDockerSave(s.stream, { image: 'x:1', imageId: cfgDigest, store });
    await s.done;
    assert.equal(saved.layers[0]!.digest, sha(gz));
    assert.equal(saved.layers[0]!.diffId, sha(l.tar));
  });

  it('refuses a layer whose content does not match the config diff_ids, and a config that is not the image ID', async () => {
    const l = await fixtureLayer('pause', 'linux/amd64');
    const { entries, cfgDigest } = image([{ blob: l.tar, diffId: sha('something else'), mediaType: 'application/vnd.oci.image.layer.v1.tar' }]);
    const s1 = ociSave(entries);
    await assert.rejects(readDockerSave(s1.stream, { image: 'x:1', imageId: cfgDigest, store }), (e: unknown) => e instanceof UserError && e.code === 'digest-mismatch' && /verification failed for layer 1 of x:1/.test(e.message));
    const s2 = ociSave(entries);
    await assert.rejects(readDockerSave(s2.stream, { image: 'x:1', imageId: sha('other'), store }), (e: unknown) => e instanceof UserError && e.code === 'digest-mismatch' && /image ID/.test(e.message));
  });

  it('streams a large layer with flat memory', async () => {
    const size = 192 << 20;
    const file = join(work, 'big.tar');
    // A layer tar holding one large incompressible file, written to disk first.
    await new Promise<void>((resolve, reject) => {
      const out = createWriteStream(file);
      out.on('error', reject);
      const t = new TarWriter(out, { mtime: 0 });
      (async () => {
        const chunk = randomBytes(1 << 20);
        const payload = join(work, 'payload');
        const p = createWriteStream(payload);
        for (let i = 0; i < size >> 20; i++) if (!p.write(chunk)) await new Promise((r) => p.once('drain', r));
        await new Promise((r) => p.end(r));
        await t.addFile('data.bin', payload);
        await t.finish();
        out.end(resolve);
      })().catch(reject);
    });
    const h = createHash('sha256');
    for await (const c of (await import('node:fs')).createReadStream(file)) h.update(c as Buffer);
    const diffId = `sha256:${h.digest('hex')}`;
    const config = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffId] } });
    const stream = new PassThrough({ highWaterMark: 1 << 16 });
    const writer = (async () => {
      const t = new TarWriter(stream, { mtime: 0 });
      await t.addFile(`${'a'.repeat(64)}/layer.tar`, file);
      await t.addBuffer(`${hex(sha(config))}.json`, config);
      await t.addBuffer('manifest.json', JSON.stringify([{ Config: `${hex(sha(config))}.json`, RepoTags: null, Layers: [`${'a'.repeat(64)}/layer.tar`] }]));
      await t.finish();
      stream.end();
    })();
    global.gc?.();
    const base = process.memoryUsage().rss;
    let peak = base;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      const saved = await readDockerSave(stream, { image: 'big:1', imageId: sha(config), store });
      await writer;
      assert.equal(saved.format, 'docker-archive');
      assert.equal(saved.layers[0]!.diffId, diffId);
    } finally {
      clearInterval(timer);
    }
    assert.ok(peak - base < 96 << 20, `memory grew by ${((peak - base) / 1048576).toFixed(0)} MB for a ${size >> 20} MB layer`);
  });
});
