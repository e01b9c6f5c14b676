// sha256FileOffThread (src/util/hash-worker.ts): the digest and size of the file as on disk, computed on
// the hashing thread; fs errors keep their code; an idle thread does not keep the process alive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256FileOffThread } from '../../src/util/hash-worker.js';
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

test('a process whose hashes are done exits on its own (the thread does not hold it)', () => {
  const script = `import { sha256FileOffThread } from ${JSON.stringify(new URL('../../src/util/hash-worker.ts', import.meta.url).href)};
    const r = await sha256FileOffThread(process.argv[1]); console.log(r.size);`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, process.execPath], { encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^\d+\n$/);
});
