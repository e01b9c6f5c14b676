import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import type { FileServer } from '../harness/file-server.js';
import { captureIo } from '../harness/io.js';
import { runCli } from '../../src/cli.js';
import { sha256, startBundleWorld, type BundleWorld } from '../harness/bundle-world.js';

/**
 * End to end: `build --arch arm64` against a local registry (docker.io and registry.k8s.io mapped to it
 * through registries.yaml) and a local HTTP server standing in for GitHub releases.
 */
let world: BundleWorld;
let files: FileServer;
let work: string;
let manifestPath: string;

before(async () => {
  world = await startBundleWorld();
  ({ files, work, manifestPath } = world);
});

after(async () => {
  await world?.stop();
});

function buildInto(out: string, cache: string, extra: string[] = []): Promise<{ code: number; err: string; out: string }> {
  return world.run(['build', '--arch', 'arm64', '--out', out, '--cache-dir', cache, ...extra]);
}

test('build --arch arm64 writes cloud and edge tarballs whose SHA256SUMS verify after tar xf', async () => {
  const out = join(work, 'out1');
  const r = await buildInto(out, join(work, 'cache1'));
  assert.equal(r.code, 0, r.err);
  const names = (await readdir(out)).sort();
  assert.deepEqual(names, ['SHA256SUMS', 'kubeprepare-cloud-v1.22.0-linux-arm64.tar', 'kubeprepare-edge-v1.22.0-linux-arm64.tar']);
  execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out });
  for (const side of ['cloud', 'edge']) {
    const name = `kubeprepare-${side}-v1.22.0-linux-arm64`;
    const x = join(work, `x-${side}`);
    await mkdir(x);
    execFileSync('tar', ['xf', join(out, `${name}.tar`), '-C', x]);
    assert.deepEqual(await readdir(x), [name], 'one top directory');
    // The default (uncompressed) output unpacks with busybox's plain `tar xf` too.
    const bx = join(work, `bx-${side}`);
    await mkdir(bx);
    execFileSync('busybox', ['tar', 'xf', join(out, `${name}.tar`), '-C', bx]);
    execFileSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: join(bx, name) });
    const top = join(x, name);
    const check = execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: top, encoding: 'utf8' });
    assert.doesNotMatch(check, /FAILED/);
    const entries = await readdir(top);
    for (const want of ['install.sh', 'bin', 'images', 'bundle.json', 'SHA256SUMS']) assert.ok(entries.includes(want), `${side}: ${want} in ${entries}`);
    const inv = JSON.parse(await readFile(join(top, 'bundle.json'), 'utf8'));
    assert.equal(inv.side, side);
    assert.equal(inv.platform, 'linux/arm64');
    assert.ok(inv.images.list.length > 0);
    for (const img of inv.images.list) assert.match(img.platform, /^linux\/arm64(\/v8)?$/, img.ref);
    assert.equal(await readFile(join(top, 'bin/keadm'), 'utf8'), '#!/bin/sh\necho keadm arm64\n');
    // every file is listed in SHA256SUMS except itself, and in bundle.json
    const sums = (await readFile(join(top, 'SHA256SUMS'), 'utf8')).trim().split('\n').map((l) => l.split('  ')[1]);
    for (const f of inv.files) assert.ok(sums.includes(f.path), f.path);
    assert.ok(sums.includes('bundle.json'));
  }
  const cloudInv = JSON.parse(execFileSync('tar', ['xOf', join(out, 'kubeprepare-cloud-v1.22.0-linux-arm64.tar'), 'kubeprepare-cloud-v1.22.0-linux-arm64/bundle.json'], { encoding: 'utf8' }));
  assert.deepEqual(cloudInv.images.list.map((i: { ref: string }) => i.ref).sort(), [
    'docker.io/kubeedge/cloudcore:v1.22.0',
    'docker.io/kubeedge/edgemesh-agent:v1.17.0',
    'docker.io/kubeedge/iptables-manager:v1.22.0',
    'docker.io/rancher/klipper-helm:v0.9.10-build20251111',
    'docker.io/rancher/klipper-lb:v0.4.13',
    'docker.io/rancher/local-path-provisioner:v0.0.32',
    'docker.io/rancher/mirrored-coredns-coredns:1.13.1',
    'docker.io/rancher/mirrored-library-busybox:1.36.1',
    'docker.io/rancher/mirrored-library-traefik:2.11.24',
    'docker.io/rancher/mirrored-pause:3.6',
    'registry.k8s.io/metrics-server/metrics-server:v0.8.0',
  ]);
  assert.ok(cloudInv.binaries.some((b: { name: string; purl: string }) => b.name === 'k3s' && b.purl.startsWith('pkg:generic/k3s@')));
});

test('building twice gives identical bytes (warm cache and cold cache)', async () => {
  const a = join(work, 'repro-a');
  const b = join(work, 'repro-b');
  assert.equal((await buildInto(a, join(work, 'cache-r1'))).code, 0);
  assert.equal((await buildInto(b, join(work, 'cache-r2'))).code, 0);
  for (const f of ['kubeprepare-cloud-v1.22.0-linux-arm64.tar', 'kubeprepare-edge-v1.22.0-linux-arm64.tar', 'SHA256SUMS']) {
    assert.equal(sha256(await readFile(join(a, f))), sha256(await readFile(join(b, f))), f);
  }
  const c = join(work, 'repro-c');
  assert.equal((await buildInto(c, join(work, 'cache-r1'))).code, 0, 'warm rebuild');
  assert.equal(sha256(await readFile(join(a, 'SHA256SUMS'))), sha256(await readFile(join(c, 'SHA256SUMS'))));
});

test('gzip output is deterministic too and unpacks with GNU tar xf (busybox needs xzf)', async () => {
  const a = join(work, 'gz-a');
  const b = join(work, 'gz-b');
  assert.equal((await buildInto(a, join(work, 'cache1'), ['--compression', 'gzip', '--only', 'edge'])).code, 0);
  assert.equal((await buildInto(b, join(work, 'cache1'), ['--compression', 'gzip', '--only', 'edge'])).code, 0);
  const f = 'kubeprepare-edge-v1.22.0-linux-arm64.tar.gz';
  assert.equal(sha256(await readFile(join(a, f))), sha256(await readFile(join(b, f))));
  const x = join(work, 'gz-x');
  await mkdir(x);
  execFileSync('tar', ['xf', join(a, f), '-C', x]);
  // Measured: Debian's busybox 1.35 `tar xf` refuses a .tar.gz ("invalid tar magic"); one reason the
  // default is an uncompressed tar.
  assert.throws(() => execFileSync('busybox', ['tar', 'xf', join(a, f), '-C', x], { stdio: 'pipe' }));
  execFileSync('busybox', ['tar', 'xzf', join(a, f), '-C', x]);
});

test('a binary checksum mismatch fails with exit 1, names the URL and leaves no tarball', async () => {
  const out = join(work, 'bad');
  const path = '/gh/opencontainers/runc/releases/download/v1.3.3/runc.arm64';
  const good = files.files.get(path);
  files.files.set(path, Buffer.from('tampered runc'));
  try {
    const r = await buildInto(out, join(work, 'cache-bad'), ['--only', 'edge']);
    assert.equal(r.code, 1);
    assert.match(r.err, /runc: sha256 mismatch for http:\/\/127\.0\.0\.1:\d+\/gh\/opencontainers\/runc\/releases\/download\/v1\.3\.3\/runc\.arm64: expected [a-f0-9]{64}, got [a-f0-9]{64}/);
    const left = await readdir(out).catch(() => []);
    assert.deepEqual(left.filter((n) => n.endsWith('.tar')), []);
    assert.deepEqual(left.filter((n) => n.startsWith('.')), [], `no temp files left: ${left}`);
  } finally {
    if (good) files.files.set(path, good);
  }
});

test('a build killed mid-way leaves no file that looks finished', async () => {
  const out = join(work, 'killed');
  const path = '/gh/k3s-io/k3s/releases/download/v1.31.14+k3s1/k3s-arm64';
  files.hang(path);
  const seenBefore = files.count(path);
  const root = process.env.KP_ROOT ?? process.cwd();
  const child = spawn(process.execPath, [join(root, 'bin/kubeprepare.js'), 'build', '--arch', 'arm64', '--manifest', manifestPath, '--out', out, '--cache-dir', join(work, 'cache-kill')], {
    env: { ...process.env, CI: 'true', KP_OFFLINE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => (log += d));
  child.stdout.on('data', (d) => (log += d));
  // Wait until the hanging download started (the edge bundle is built after the cloud one).
  const deadline = Date.now() + 30_000;
  while (files.count(path) === seenBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(files.count(path) > seenBefore, `the build reached the k3s download: ${log}`);
  await new Promise((r) => setTimeout(r, 300)); // the first bytes are in the partial file
  child.kill('SIGKILL');
  await new Promise((r) => child.on('close', r));
  const left = await readdir(out).catch(() => []);
  assert.deepEqual(left.filter((n) => /\.tar(\.gz|\.zst)?$/.test(n) || n === 'SHA256SUMS'), [], `no finished-looking output: ${left}`);
  // The interrupted download is resumable: its partial file is in the cache.
  const partials = await readdir(join(work, 'cache-kill', 'partial'));
  assert.ok(partials.some((n) => n.endsWith('.partial')), `partial kept: ${partials}`);
});

test('CLI exit codes: bad arch 2, missing --arch 2; --dry-run writes nothing', async () => {
  let io = captureIo();
  assert.equal(await runCli(['build', '--arch', 'sparc', '--manifest', manifestPath], io), 2);
  assert.match(io.errText(), /unknown architecture 'sparc'/);
  io = captureIo();
  assert.equal(await runCli(['build', '--manifest', manifestPath], io), 2);
  io = captureIo();
  assert.equal(await runCli(['build', '--arch', 'arm64', '--dry-run', '--manifest', manifestPath, '--out', join(work, 'dry')], io), 0);
  assert.match(io.outText(), /dry run: nothing downloaded or written/);
  assert.deepEqual(await readdir(join(work, 'dry')).catch(() => []), []);
});

test('images command: only the archive, for given refs, exact platform; a missing platform fails listing what exists', async () => {
  const out = join(work, 'img', 'edge-arm.tar');
  let io = captureIo();
  let code = await runCli(['images', '--arch', 'arm', '--only', 'edge', '--out', out, '--manifest', manifestPath, '--cache-dir', join(work, 'cache1')], io);
  assert.equal(code, 0, io.errText());
  assert.match(io.outText(), /edge-arm\.tar .* \(3 images, /);
  const index = JSON.parse(execFileSync('tar', ['xOf', out, 'index.json'], { encoding: 'utf8' }));
  for (const m of index.manifests) assert.deepEqual(m.platform, { os: 'linux', architecture: 'arm', variant: 'v7' });
  io = captureIo();
  code = await runCli(['images', '--arch', 'arm64', '--out', join(work, 'img', 'one.tar'), '--manifest', manifestPath, '--cache-dir', join(work, 'cache1'), 'kubeedge/pause:3.6'], io);
  assert.equal(code, 0, io.errText());
  assert.match(io.outText(), /\(1 images, /);
  io = captureIo();
  code = await runCli(['images', '--arch', 'arm/v6', '--out', join(work, 'img', 'v6.tar'), '--manifest', manifestPath, '--cache-dir', join(work, 'cache1'), 'kubeedge/pause:3.6'], io);
  assert.notEqual(code, 0);
  assert.match(io.errText(), /linux\/arm\/v6/);
  assert.match(io.errText(), /linux\/amd64/);
  assert.deepEqual((await readdir(join(work, 'img'))).filter((n) => n.includes('v6')), [], 'no archive for the failed request');
});
