// src/util/hash-worker.ts. sha256FileOffThread: the digest and size of the file as on disk, computed on
// the hashing thread; fs errors keep their code; an idle thread does not keep the process alive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { appendFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashFileAsWritten, sha256FileOffThread, writeStagedHashed } from '../../src/util/hash-worker.js';
import { sha256 } from '../../src/util/hash.js';

test('the digest and size of files of 0 bytes, less than a read, and several reads', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-hw-'));
  try {
    for (const n of [0, 1000, (3 << 20) + 17]) {
      const body = randomBytes(n);
      const f = join(dir, `f${n}`);
      await writeFile(f, body);
      assert.deepEqual(await sha256FileOffThread(f), { hex: sha256(body), size: n });
    }
    const many = await Promise.all([0, 1, 2].map(async (i) => {
      const f = join(dir, `m${i}`);
      await writeFile(f, `file ${i}`);
      return (await sha256FileOffThread(f)).hex;
    }));
    assert.deepEqual(many, [0, 1, 2].map((i) => sha256(`file ${i}`)));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a missing file rejects with ENOENT (the code fsError reports)', async () => {
  await assert.rejects(sha256FileOffThread(join(tmpdir(), 'kp-hw-does-not-exist')), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
});

test('a process whose hashes are done, or whose sessions never asked for one, exits on its own (the thread does not hold it)', () => {
  const mod = JSON.stringify(new URL('../../src/util/hash-worker.ts', import.meta.url).href);
  const scripts = [
    `import { sha256FileOffThread } from ${mod}; const r = await sha256FileOffThread(process.argv[1]); console.log(r.size);`,
    // The thread started by sessions that are fed and closed, or left, without a digest (downloads that failed midway).
    `import { hashFileAsWritten } from ${mod}; const s = hashFileAsWritten(process.argv[1]); s.written(100); s.close(); hashFileAsWritten(process.argv[1]).written(10); console.log(0);`,
  ];
  for (const script of scripts) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, process.execPath], { encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 0, `${script}: ${r.stderr}`);
    assert.match(r.stdout, /^\d+\n$/);
  }
});

// hashFileAsWritten: a file hashed as it grows, and a range of it from the same reads (the images archive
// inside an uncompressed bundle tarball); errors of the file and of the caller.
test('a file hashed as it is written, with a range declared before its bytes: both digests are of the bytes on disk', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-hw-'));
  try {
    const f = join(dir, 'grows');
    // Pieces across the thread's 1 MiB reads; the range starts and ends inside reads.
    const pieces = [randomBytes(700), randomBytes((2 << 20) + 5), randomBytes(3000), randomBytes(1 << 20)];
    const start = 700 + 100;
    const end = 700 + (2 << 20) + 5 + 1500;
    await writeFile(f, '');
    const h = hashFileAsWritten(f);
    let size = 0;
    let range: Promise<string> | undefined;
    let empty: Promise<string> | undefined;
    for (const p of pieces) {
      if (!range) {
        range = h.range(start, end);
        empty = h.range(start, start);
      }
      await appendFile(f, p);
      size += p.length;
      h.written(size);
    }
    const all = Buffer.concat(pieces);
    assert.equal(await range, sha256(all.subarray(start, end)));
    assert.equal(await empty, sha256(Buffer.alloc(0)));
    assert.deepEqual(await h.finish(), { hex: sha256(all), size: all.length });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a range declared after its start was reported written is refused (its bytes may be hashed already)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-hw-'));
  try {
    const f = join(dir, 'f');
    await writeFile(f, randomBytes(4096));
    const h = hashFileAsWritten(f);
    h.written(4096);
    assert.throws(() => h.range(1000, 2000), /declared after byte 4096/);
    assert.equal((await h.finish()).size, 4096);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a closed session rejects its pending range; a file shorter than reported fails the session', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-hw-'));
  try {
    const f = join(dir, 'f');
    await writeFile(f, 'ten bytes!');
    const a = hashFileAsWritten(f);
    const pending = a.range(0, 100);
    a.close();
    await assert.rejects(pending, /was stopped/);
    const b = hashFileAsWritten(f);
    const short = b.range(5, 50);
    b.written(50);
    await assert.rejects(short, /ends at byte 10, but 50 were written/);
    await assert.rejects(b.finish(), /ends at byte 10/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('writeStagedHashed: the staged file with its digest and size; a failed write leaves no file behind', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-hw-'));
  try {
    const body = randomBytes((5 << 20) + 3);
    let range: Promise<string> | undefined;
    const staged = await writeStagedHashed(join(dir, 'out.tar'), async (out, hashing) => {
      out.write(body.subarray(0, 1000));
      range = hashing.range(1000, 2000);
      // Written in pieces with pauses, so the 20 ms reports come while the file grows.
      for (let at = 1000; at < body.length; at += 1 << 20) {
        if (!out.write(body.subarray(at, Math.min(body.length, at + (1 << 20))))) await once(out, 'drain');
        await new Promise((r) => setTimeout(r, 25));
      }
      return 'value';
    });
    assert.equal(await range, sha256(body.subarray(1000, 2000)));
    assert.deepEqual({ ...staged.result }, { value: 'value', sha256: sha256(body), size: body.length });
    await staged.commit();
    assert.deepEqual(await readdir(dir), ['out.tar']);
    await assert.rejects(
      writeStagedHashed(join(dir, 'bad.tar'), async (out) => {
        out.write('some bytes');
        throw new Error('the write failed');
      }),
      /the write failed/,
    );
    assert.deepEqual(await readdir(dir), ['out.tar']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
