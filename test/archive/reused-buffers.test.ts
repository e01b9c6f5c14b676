import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { BufferPool, markReleasing, releasesOnCallback } from '../../src/archive/chunk-release.js';
import { planOciArchive, writeOciArchiveTo, type OciArchiveImage } from '../../src/archive/oci-archive.js';
import { TarWriter } from '../../src/archive/tar-writer.js';
import { ContentMismatchError } from '../../src/util/hash.js';

/*
 * Over an output that releases chunks at their write callbacks (a file), TarWriter copies files through a
 * few reused buffers. The outputs below copy each chunk only when they call back, after a delay: a
 * buffer refilled before its callback would show up as wrong bytes.
 */

/** A stream marked as releasing that keeps a copy of each chunk taken at its (delayed) callback. */
function lateCopier(delayMs = 2): { out: Writable; bytes(): Buffer } {
  const parts: Buffer[] = [];
  const out = new Writable({
    highWaterMark: 16 << 20,
    write(chunk: Buffer, _enc, cb) {
      setTimeout(() => {
        parts.push(Buffer.from(chunk));
        cb();
      }, delayMs);
    },
  });
  return { out: markReleasing(out), bytes: () => Buffer.concat(parts) };
}

/** The same entries through a PassThrough (fresh buffers, the plain path), collected. */
async function viaPassThrough(write: (tw: TarWriter) => Promise<void>): Promise<Buffer> {
  const p = new PassThrough();
  const parts: Buffer[] = [];
  p.on('data', (d: Buffer) => parts.push(d));
  assert.equal(releasesOnCallback(p), false, 'a pass-through keeps chunks after its callback');
  const tw = new TarWriter(p, { mtime: 1700000000 });
  await write(tw);
  p.end();
  await finished(p);
  return Buffer.concat(parts);
}

async function files(): Promise<{ dir: string; big: string; odd: string; small: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'kp-reuse-'));
  const big = join(dir, 'big');
  const odd = join(dir, 'odd');
  const small = join(dir, 'small');
  await writeFile(big, randomBytes(9 * (1 << 20) + 123)); // more chunks than buffers
  await writeFile(odd, randomBytes((1 << 20) - 1));
  await writeFile(small, randomBytes(700));
  return { dir, big, odd, small };
}

const sha = (file: Buffer) => createHash('sha256').update(file).digest('hex');

test('which outputs release chunks at their callbacks: a file, a marked stream; not a pass-through', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-reuse-'));
  const file = createWriteStream(join(dir, 'f'));
  assert.equal(releasesOnCallback(file), true);
  assert.equal(releasesOnCallback(new PassThrough()), false);
  assert.equal(releasesOnCallback(new Writable({ write: (_c, _e, cb) => cb() })), false);
  assert.equal(releasesOnCallback(markReleasing(new Writable({ write: (_c, _e, cb) => cb() }))), true);
  // A streamed entry's sink says so only when the tarball's own output does.
  const seen: boolean[] = [];
  for (const out of [file, new PassThrough().resume()]) {
    const tw = new TarWriter(out, { mtime: 0 });
    await tw.addStreamed('x', 3, async (sink) => {
      seen.push(releasesOnCallback(sink));
      sink.write(Buffer.from('abc'));
    });
  }
  assert.deepEqual(seen, [true, false]);
  file.end();
  await finished(file);
  await rm(dir, { recursive: true, force: true });
});

test('files copied through reused buffers give the same bytes as through fresh ones, the digest checked', async () => {
  const { dir, big, odd, small } = await files();
  const entries = async (tw: TarWriter) => {
    await tw.addFile('a/big', big, { sha256: sha(await readFile(big)) });
    await tw.addBuffer('a/note', 'between\n');
    await tw.addFile('a/odd', odd);
    await tw.addFile('a/small', small, { sha256: sha(await readFile(small)) });
    await tw.addFile('a/big-again', big);
    await tw.finish();
  };
  const expected = await viaPassThrough(entries);
  const late = lateCopier();
  await entries(new TarWriter(late.out, { mtime: 1700000000 }));
  late.out.end();
  await finished(late.out);
  assert.equal(late.bytes().length, expected.length);
  assert.ok(late.bytes().equals(expected), 'a buffer was refilled before the output called back for it');

  // And into a real file, as the archive writers use it.
  const tarFile = join(dir, 'out.tar');
  const out = createWriteStream(tarFile);
  await entries(new TarWriter(out, { mtime: 1700000000 }));
  out.end();
  await finished(out);
  assert.ok((await readFile(tarFile)).equals(expected));
  await rm(dir, { recursive: true, force: true });
});

test('a file that does not match its digest fails on the reused-buffer path too, naming the file', async () => {
  const { dir, big } = await files();
  const late = lateCopier(0);
  const tw = new TarWriter(late.out, { mtime: 0 });
  const wrong = '0'.repeat(64);
  const actual = sha(await readFile(big));
  await assert.rejects(tw.addFile('big', big, { sha256: wrong }), (e: unknown) => {
    assert.ok(e instanceof ContentMismatchError);
    assert.equal(e.file, big);
    assert.equal(e.expected, wrong);
    assert.equal(e.actual, actual);
    return true;
  });
  await rm(dir, { recursive: true, force: true });
});

test('a write that fails on the reused-buffer path fails the copy, not later', async () => {
  const { dir, big } = await files();
  let n = 0;
  const failing = markReleasing(
    new Writable({
      write(_chunk, _enc, cb) {
        setImmediate(() => cb(++n === 4 ? new Error('ENOSPC: no space left on device, write') : null));
      },
    }),
  );
  failing.on('error', () => {});
  const tw = new TarWriter(failing, { mtime: 0 });
  await assert.rejects(
    (async () => {
      await tw.addFile('big', big);
      await tw.finish();
    })(),
    /ENOSPC/,
  );
  await rm(dir, { recursive: true, force: true });
});

test('an images archive written through the hashing forwarder into a releasing output has the bytes and digest of the plain path', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-reuse-'));
  const blobs = new Map<string, Buffer>();
  const put = (b: Buffer) => {
    const d = `sha256:${sha(b)}`;
    blobs.set(d, b);
    return { digest: d, size: b.length };
  };
  const layer = put(randomBytes(6 * (1 << 20) + 5));
  const config = put(Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'linux' })));
  const manifestBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, config, layers: [layer] }));
  const manifest = { ...put(manifestBytes), mediaType: 'application/vnd.oci.image.manifest.v1+json', bytes: manifestBytes };
  for (const [d, b] of blobs) await writeFile(join(dir, d.slice(7)), b);
  const images: OciArchiveImage[] = [
    {
      ref: 'docker.io/library/x:1',
      platform: { os: 'linux', architecture: 'arm64' },
      manifest,
      config: { ...config, mediaType: 'application/vnd.oci.image.config.v1+json' },
      layers: [{ ...layer, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }],
    },
  ];
  const layout = planOciArchive(images, 'test');
  const opts = { mtime: 0, blobFile: (d: string) => join(dir, d.slice(7)) };

  const plain = new PassThrough();
  const plainParts: Buffer[] = [];
  plain.on('data', (d: Buffer) => plainParts.push(d));
  const a = await writeOciArchiveTo(plain, layout, opts);
  plain.end();
  await finished(plain);

  const late = lateCopier();
  const b = await writeOciArchiveTo(late.out, layout, opts);
  late.out.end();
  await finished(late.out);
  assert.equal(b.sha256, a.sha256);
  assert.ok(late.bytes().equals(Buffer.concat(plainParts)), 'the archive through reused buffers differs');
  assert.equal(sha(late.bytes()), b.sha256);
  await rm(dir, { recursive: true, force: true });
});

test('the buffer pool lends at most its count, first come first served, and makes buffers only on need', async () => {
  const pool = new BufferPool(2, 16);
  assert.equal(pool.allocated, 0);
  const a = await pool.acquire();
  const b = await pool.acquire();
  assert.equal(pool.allocated, 2);
  const order: string[] = [];
  const c = pool.acquire().then((x) => (order.push('c'), x));
  const d = pool.acquire().then((x) => (order.push('d'), x));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [], 'nothing is lent beyond the count');
  pool.release(b);
  assert.equal(await c, b, 'the longest waiting gets the buffer given back');
  pool.release(a);
  assert.equal(await d, a);
  assert.deepEqual(order, ['c', 'd']);
  assert.equal(pool.allocated, 2);
});

test('archives written at once share one small pool: each gets its own bytes, no more buffers are made, none is lost', async () => {
  const { dir, big, odd, small } = await files();
  const pool = new BufferPool(2, 1 << 20);
  const entries = async (tw: TarWriter) => {
    await tw.addFile('a/big', big, { sha256: sha(await readFile(big)) });
    await tw.addFile('a/odd', odd);
    await tw.addFile('a/small', small);
    await tw.finish();
  };
  const expected = await viaPassThrough(entries);
  const outs = [lateCopier(1), lateCopier(3), lateCopier(0), lateCopier(2)];
  await Promise.all(
    outs.map(async (o) => {
      await entries(new TarWriter(o.out, { mtime: 1700000000, pool }));
      o.out.end();
      await finished(o.out);
    }),
  );
  for (const o of outs) assert.ok(o.bytes().equals(expected), 'an archive got another writer\'s bytes');
  assert.equal(pool.allocated, 2);
  // Every buffer came back: both can be taken at once again.
  const both = await Promise.race([Promise.all([pool.acquire(), pool.acquire()]), new Promise((r) => setTimeout(() => r('lost'), 1000))]);
  assert.notEqual(both, 'lost', 'a buffer was not given back to the pool');
  await rm(dir, { recursive: true, force: true });
});

test('a writer whose output fails gives its buffers back: the other writers of the pool go on', async () => {
  const { dir, big } = await files();
  const pool = new BufferPool(2, 1 << 20);
  let n = 0;
  const failing = markReleasing(
    new Writable({
      write(_chunk, _enc, cb) {
        setImmediate(() => cb(++n >= 2 ? new Error('EIO: i/o error, write') : null));
      },
    }),
  );
  failing.on('error', () => {});
  await assert.rejects(
    (async () => {
      const tw = new TarWriter(failing, { mtime: 0, pool });
      await tw.addFile('big', big);
      await tw.finish();
    })(),
    /EIO/,
  );
  const late = lateCopier(0);
  const ok = (async () => {
    const tw = new TarWriter(late.out, { mtime: 0, pool });
    await tw.addFile('big', big);
    await tw.finish();
    return 'done';
  })();
  assert.equal(await Promise.race([ok, new Promise((r) => setTimeout(() => r('stuck'), 5000))]), 'done');
  await rm(dir, { recursive: true, force: true });
});
