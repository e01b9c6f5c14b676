import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { readTar, TarFormatError, type TarEntry } from '../../src/engines/docker/tar-reader.js';
import { TarWriter } from '../../src/archive/tar-writer.js';

/** A tar written by TarWriter (ustar, a pax path, a prefix split), as one buffer. */
async function sample(): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const tw = new TarWriter(out, { mtime: 1700000000 });
  await tw.addDirectory('blobs');
  await tw.addBuffer('manifest.json', '[{"Config":"c.json"}]');
  await tw.addBuffer('blobs/big', Buffer.alloc(5000, 1));
  await tw.addBuffer(`blobs/${'x'.repeat(120)}`, 'pax path');
  await tw.addBuffer(`${'d'.repeat(90)}/${'e'.repeat(60)}/layer.tar`, 'prefix split');
  await tw.finish();
  out.end();
  return Buffer.concat(chunks);
}

/** `buf` in pieces of `size` bytes; records whether the reader closed it early. */
function source(buf: Buffer, size: number): AsyncIterable<Buffer> & { served: number; closed: boolean } {
  const s = {
    served: 0,
    closed: false,
    [Symbol.asyncIterator]() {
      let off = 0;
      return {
        next: async () => {
          if (off >= buf.length) return { done: true as const, value: undefined };
          const c = buf.subarray(off, off + size);
          off += c.length;
          s.served = off;
          return { done: false as const, value: c };
        },
        return: async () => {
          s.closed = true;
          return { done: true as const, value: undefined };
        },
      };
    },
  };
  return s;
}

async function collect(entries: AsyncIterable<TarEntry>, skip: (e: TarEntry) => boolean = () => false): Promise<[string, string, number, string][]> {
  const out: [string, string, number, string][] = [];
  for await (const e of entries) {
    if (skip(e)) {
      out.push([e.path, e.type, e.size, '(not read)']);
      continue;
    }
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(c);
    const body = Buffer.concat(parts);
    out.push([e.path, e.type, e.size, body.length > 40 ? `${body.length} bytes` : body.toString()]);
  }
  return out;
}

test('reads every entry and its bytes, whatever the chunk size, also when a body is left unread', async () => {
  const tar = await sample();
  const want: [string, string, number, string][] = [
    ['blobs/', 'dir', 0, ''],
    ['manifest.json', 'file', 21, '[{"Config":"c.json"}]'],
    ['blobs/big', 'file', 5000, '5000 bytes'],
    [`blobs/${'x'.repeat(120)}`, 'file', 8, 'pax path'],
    [`${'d'.repeat(90)}/${'e'.repeat(60)}/layer.tar`, 'file', 12, 'prefix split'],
  ];
  for (const size of [1, 100, 512, 1000, 1 << 20]) assert.deepEqual(await collect(readTar(source(tar, size))), want, `chunks of ${size}`);
  const skipped = await collect(readTar(source(tar, 700)), (e) => e.path === 'blobs/big');
  assert.deepEqual(skipped, want.map((w) => (w[0] === 'blobs/big' ? [w[0], w[1], w[2], '(not read)'] : w)));
});

test('stops reading the source at the end-of-archive marker and closes it', async () => {
  const tar = Buffer.concat([await sample(), Buffer.alloc(64 * 1024, 9)]);
  const src = source(tar, 512);
  assert.equal((await collect(readTar(src))).length, 5);
  assert.ok(src.served < tar.length - 60 * 1024, `read ${src.served} of ${tar.length} bytes`);
  assert.ok(src.closed);
});

test('a cut or corrupt stream is a TarFormatError saying where', async () => {
  const tar = await sample();
  const cut = tar.subarray(0, 512 * 4 + 100); // inside blobs/big
  await assert.rejects(collect(readTar(source(cut, 256))), (e: unknown) => e instanceof TarFormatError && /truncated: the archive ends inside blobs\/big after \d+ of 5000 bytes/.test(e.message));
  await assert.rejects(collect(readTar(source(Buffer.alloc(2048, 0x41), 300))), (e: unknown) => e instanceof TarFormatError && /not a tar archive/.test(e.message));
  const bad = Buffer.from(tar);
  bad[512 * 3 + 10] ^= 0xff; // the header of blobs/big (after blobs/, manifest.json and its data block)
  await assert.rejects(collect(readTar(source(bad, 4096))), (e: unknown) => e instanceof TarFormatError && /bad checksum/.test(e.message));
  await assert.rejects(collect(readTar(source(tar.subarray(0, tar.length - 1024), 4096))), (e: unknown) => e instanceof TarFormatError && /without the end-of-archive marker/.test(e.message));
});
