import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile, mkdir } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { execFileSync } from 'node:child_process';
import * as tar from 'tar';
import { TarWriter } from '../../src/archive/tar-writer.js';
import { requireBinary } from '../harness/process.js';

async function writeSample(path: string, srcFile: string, mtime: number): Promise<void> {
  const out = createWriteStream(path);
  const tw = new TarWriter(out, { mtime });
  await tw.addDirectory('top');
  await tw.addBuffer('top/hello.txt', 'hello\n', { mode: 0o644 });
  await tw.addFile('top/bin/tool', srcFile, { mode: 0o755 });
  const longDir = `top/${'d'.repeat(90)}/${'e'.repeat(60)}`;
  await tw.addBuffer(`${longDir}/file-with-a-long-name.txt`, 'prefix split\n');
  await tw.addBuffer(`top/${'x'.repeat(120)}.txt`, 'pax path\n');
  await tw.finish();
  out.end();
  await finished(out);
}

test('same input gives identical bytes; GNU tar, busybox tar and node-tar read it back', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-tar-'));
  const src = join(dir, 'tool');
  await writeFile(src, Buffer.alloc(70_000, 7));
  await writeSample(join(dir, 'a.tar'), src, 1700000000);
  await writeSample(join(dir, 'b.tar'), src, 1700000000);
  const a = await readFile(join(dir, 'a.tar'));
  assert.deepEqual(a, await readFile(join(dir, 'b.tar')));
  assert.equal(a.length % 512, 0);

  const listing = execFileSync('tar', ['tvf', join(dir, 'a.tar')], { encoding: 'utf8' });
  assert.match(listing, /^-rwxr-xr-x 0\/0 +70000 2023-11-14 \d\d:\d\d top\/bin\/tool$/m, listing);
  assert.match(listing, new RegExp(`top/${'x'.repeat(120)}\\.txt`));
  assert.match(listing, /e{60}\/file-with-a-long-name\.txt/);

  for (const [name, cmd] of [
    ['gnu', ['tar', 'xf']],
    ['busybox', ['busybox', 'tar', 'xf']],
  ] as const) {
    if (name === 'busybox') requireBinary('/bin/busybox', 'busybox');
    const x = join(dir, `x-${name}`);
    await mkdir(x);
    execFileSync(cmd[0], [...cmd.slice(1), join(dir, 'a.tar'), '-C', x]);
    assert.equal(await readFile(join(x, 'top/hello.txt'), 'utf8'), 'hello\n', name);
    assert.equal((await readFile(join(x, `top/${'x'.repeat(120)}.txt`), 'utf8')), 'pax path\n', name);
    assert.equal((await readFile(join(x, 'top/bin/tool'))).length, 70_000, name);
  }
  const seen: string[] = [];
  await tar.t({ file: join(dir, 'a.tar'), onReadEntry: (e) => void seen.push(e.path) });
  assert.ok(seen.includes('top/hello.txt'));
});

test('a different mtime changes the bytes (mtime is recorded)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-tar-'));
  const src = join(dir, 'tool');
  await writeFile(src, 'x');
  await writeSample(join(dir, 'a.tar'), src, 1);
  await writeSample(join(dir, 'b.tar'), src, 2);
  assert.notDeepEqual(await readFile(join(dir, 'a.tar')), await readFile(join(dir, 'b.tar')));
});

test('unsafe paths are refused', async () => {
  const tw = new TarWriter(createWriteStream('/dev/null'), { mtime: 0 });
  await assert.rejects(tw.addBuffer('../etc/passwd', 'x'), /unsafe tar path/);
  await assert.rejects(tw.addBuffer('/abs', 'x'), /unsafe tar path/);
});
