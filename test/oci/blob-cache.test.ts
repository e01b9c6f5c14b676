// BlobCache.putBuffer (src/oci/blob-cache.ts): bytes are verified before they are stored; a blob already
// stored with its size is not written again (a tag's manifest is fetched on every build), and a damaged
// entry is still found and evicted by the next verified read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobCache } from '../../src/oci/blob-cache.js';
import { sha256Digest } from '../../src/oci/digest.js';

test('putBuffer stores verified bytes once; a second put of the same blob leaves the entry as it was', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-cache-'));
  try {
    const cache = new BlobCache(dir);
    const body = Buffer.from('{"schemaVersion":2}');
    const b = { digest: sha256Digest(body), size: body.length };
    await cache.putBuffer(b, body, 'img', 'manifest');
    const before = await stat(cache.path(b.digest));
    await new Promise((r) => setTimeout(r, 20));
    await cache.putBuffer(b, body, 'img', 'manifest');
    const after = await stat(cache.path(b.digest));
    assert.equal(after.ino, before.ino);
    assert.equal(after.mtimeMs, before.mtimeMs);
    assert.deepEqual(await cache.readVerified(b), body);
    await assert.rejects(cache.putBuffer(b, Buffer.from('{"schemaVersion":3}'), 'img', 'manifest'), /img/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an entry damaged in place (same size) is kept by putBuffer, then evicted by the next verified read', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-cache-'));
  try {
    const cache = new BlobCache(dir);
    const body = Buffer.from('{"schemaVersion":2}');
    const b = { digest: sha256Digest(body), size: body.length };
    await cache.putBuffer(b, body, 'img', 'manifest');
    await writeFile(cache.path(b.digest), Buffer.from('{"schemaVersion":9}'));
    await cache.putBuffer(b, body, 'img', 'manifest');
    assert.equal(await cache.readVerified(b), undefined);
    assert.equal(await cache.has(b), false);
    await cache.putBuffer(b, body, 'img', 'manifest');
    assert.deepEqual(await cache.readVerified(b), body);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
