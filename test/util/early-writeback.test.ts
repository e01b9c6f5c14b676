// The early writeback of util/fs.ts: a durable output is flushed while it is written (so the final
// fsync has little left), the bytes are those written, and a failed early sync is reported, not lost
// (the kernel reports a writeback error to one fsync only).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream, fdatasync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { finished } from 'node:stream/promises';
import { earlyWriteback, writeAtomically } from '../../src/util/fs.js';

async function writeChunks(out: NodeJS.WritableStream, chunks: Buffer[]): Promise<void> {
  for (const c of chunks) {
    if (!out.write(c)) await new Promise((r) => out.once('drain', r));
    // Let the 20 ms poll see the progress, as a real writer waiting on the network does.
    await new Promise((r) => setTimeout(r, 2));
  }
}

test('a durable output written through writeAtomically has exactly the bytes written (40 MiB, early syncs meanwhile)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-wb-'));
  try {
    const chunks = Array.from({ length: 40 }, () => randomBytes(1 << 20));
    const file = join(dir, 'out.bin');
    await writeAtomically(file, (out) => writeChunks(out, chunks));
    assert.ok((await readFile(file)).equals(Buffer.concat(chunks)));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('early syncs run while the file is written, one step apart, on the file being written', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-wb-'));
  try {
    const out = createWriteStream(join(dir, 'f'));
    const seen: number[] = [];
    const wb = earlyWriteback(out, 4 << 20, (fd, cb) => {
      seen.push(out.bytesWritten);
      assert.equal(fd, (out as unknown as { fd: number }).fd);
      fdatasync(fd, cb);
    });
    await writeChunks(out, Array.from({ length: 24 }, () => randomBytes(1 << 20)));
    assert.equal(await wb.stop(), undefined);
    out.end();
    await finished(out);
    assert.ok(seen.length >= 2, `early syncs: ${seen.length}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! - seen[i - 1]! >= 4 << 20, `syncs ${seen.join(', ')}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a failed early sync is returned by stop() (the final fsync would not see it again)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-wb-'));
  try {
    const out = createWriteStream(join(dir, 'f'));
    const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    const wb = earlyWriteback(out, 1 << 20, (_fd, cb) => setImmediate(() => cb(eio)));
    await writeChunks(out, Array.from({ length: 8 }, () => randomBytes(1 << 20)));
    assert.equal(await wb.stop(), eio);
    out.end();
    await finished(out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
