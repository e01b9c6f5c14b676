import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { checkEntrypoint } from '../../src/engines/entrypoint.js';
import { LayerIndexer, type LayerIndex } from '../../src/engines/layer-index.js';
import { elfFor, fixtureTar, type FixtureTarEntry } from '../harness/fixtures.js';

/** The entrypoint check over real tar layers (node-tar's Parser reading what a tar writer wrote). */
async function index(entries: FixtureTarEntry[], gzip = true): Promise<LayerIndex> {
  const tar = fixtureTar(entries);
  const bytes = gzip ? gzipSync(tar) : tar;
  const ix = new LayerIndexer();
  // In small chunks, as a stream delivers them.
  for (let i = 0; i < bytes.length; i += 700) ix.write(bytes.subarray(i, i + 700));
  return ix.end();
}
const arm64 = elfFor('linux/arm64', Buffer.alloc(100, 1));
const amd64 = elfFor('linux/amd64', Buffer.alloc(100, 2));
const arm = elfFor('linux/arm/v7', Buffer.alloc(100, 3));

async function check(layers: FixtureTarEntry[][], config: object, arch: string, plain = false) {
  const ix = await Promise.all(layers.map((l) => index(l, !plain)));
  const read: number[] = [];
  const r = await checkEntrypoint(config, arch, ix.length, async (n) => {
    read.push(n);
    return ix[n]!;
  });
  return { ...r, read };
}

test('an ELF entrypoint for the platform passes, through an absolute and a relative symlink, across layers', async () => {
  const base: FixtureTarEntry[] = [{ path: 'usr/', type: 'dir' }, { path: 'usr/bin/', type: 'dir' }, { path: 'usr/bin/app', type: 'file', data: arm64, mode: 0o755 }];
  const top: FixtureTarEntry[] = [{ path: 'bin', type: 'symlink', target: 'usr/bin' }, { path: 'app', type: 'symlink', target: '/bin/app' }];
  const r = await check([base, top], { config: { Entrypoint: ['/app'] } }, 'arm64');
  assert.deepEqual(r.problems, []);
  assert.equal(r.program, '/app');
  // The same image labelled amd64 is refused, naming the file.
  const bad = await check([base, top], { config: { Entrypoint: ['/app'] } }, 'amd64');
  assert.deepEqual(bad.problems, ['/app (/usr/bin/app) is an ELF binary for AArch64, 64-bit, not x86-64, 64-bit']);
});

test('x86-64 binaries in an arm64 image are refused; a 32-bit ARM binary passes for arm; Cmd when there is no Entrypoint; PATH lookup', async () => {
  const l: FixtureTarEntry[] = [{ path: 'usr/local/bin/srv', type: 'file', data: amd64, mode: 0o755 }, { path: 'bin/tool', type: 'file', data: arm, mode: 0o755 }];
  const r = await check([l], { config: { Cmd: ['srv', '--flag'], Env: ['PATH=/usr/local/bin:/bin'] } }, 'arm64');
  assert.deepEqual(r.problems, ['srv (/usr/local/bin/srv) is an ELF binary for x86-64, 64-bit, not AArch64, 64-bit']);
  assert.deepEqual((await check([l], { config: { Entrypoint: ['tool'], Cmd: ['srv'] } }, 'arm', true)).problems, []);
});

test('a #! script is checked through its interpreter; a missing file, a whiteout and an opaque directory are problems', async () => {
  const base: FixtureTarEntry[] = [
    { path: 'bin/sh', type: 'file', data: amd64, mode: 0o755 },
    { path: 'entry.sh', type: 'file', data: '#!/bin/sh -e\necho hi\n', mode: 0o755 },
    { path: 'opt/x/run', type: 'file', data: arm64, mode: 0o755 },
    { path: 'opt/y/run', type: 'file', data: arm64, mode: 0o755 },
  ];
  const sh = await check([base], { config: { Entrypoint: ['/entry.sh'] } }, 'arm64');
  assert.deepEqual(sh.problems, ['/bin/sh (the #! interpreter of /entry.sh) is an ELF binary for x86-64, 64-bit, not AArch64, 64-bit']);
  const missing = await check([base], { config: { Entrypoint: ['/nope'] } }, 'arm64');
  assert.deepEqual(missing.problems, ['/nope: /nope: no such file in the image']);
  const wh = await check([base, [{ path: 'opt/x/.wh.run', type: 'file', data: '' }]], { config: { Entrypoint: ['/opt/x/run'] } }, 'arm64');
  assert.deepEqual(wh.problems, ['/opt/x/run: /opt/x/run: no such file in the image']);
  const opq = await check([base, [{ path: 'opt/y/.wh..wh..opq', type: 'file', data: '' }, { path: 'opt/y/other', type: 'file', data: 'x' }]], { config: { Entrypoint: ['/opt/y/run'] } }, 'arm64');
  assert.deepEqual(opq.problems, ['/opt/y/run: /opt/y/run: no such file in the image']);
  const notExec = await check([[{ path: 'a', type: 'file', data: arm64, mode: 0o644 }]], { config: { Entrypoint: ['/a'] } }, 'arm64');
  assert.deepEqual(notExec.problems, ['/a is not executable (mode 0644)']);
});

test('lower layers are read only when the upper ones do not decide the path', async () => {
  const r = await check([[{ path: 'bin/x', type: 'file', data: amd64, mode: 0o755 }], [{ path: 'lib/y', type: 'file', data: 'y' }], [{ path: 'app', type: 'file', data: arm64, mode: 0o755 }]], { config: { Entrypoint: ['/app'] } }, 'arm64');
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.read, [2]);
  const hard = await check([[{ path: 'bin/busybox', type: 'file', data: arm64, mode: 0o755 }, { path: 'bin/sh', type: 'hardlink', target: 'bin/busybox' }]], { config: { Cmd: ['/bin/sh'] } }, 'arm64');
  assert.deepEqual(hard.problems, []);
});
