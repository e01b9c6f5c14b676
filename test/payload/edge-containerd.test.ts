import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { startBundleWorld, EDGE, type BundleWorld } from '../harness/bundle-world.js';
import { listImages, startContainerd, type TestContainerd } from '../harness/containerd.js';

/**
 * The edge installer of a REAL built bundle imports its images into a REAL containerd: only keadm,
 * systemctl and the TCP probe are stand-ins (test/bats/stubs); `ctr` is containerd's own. Afterwards the
 * images are listed under their canonical names with the bundle's platform, and a second run imports
 * nothing.
 */
let world: BundleWorld;
let containerd: TestContainerd | undefined;
let root: string;
let bundle: string;
let sysroot: string;
let stubs: string;

before(async () => {
  world = await startBundleWorld();
  root = await mkdtemp(join(tmpdir(), 'kp-edge-ctr-'));
  const built = await world.build(join(root, 'out'), ['--only', 'edge']);
  execFileSync('tar', ['xf', built.edge, '-C', root]);
  bundle = join(root, EDGE);
  sysroot = join(root, 'sysroot');
  await mkdir(sysroot);
  // every stub but ctr (the real one is used) and containerd (the real daemon runs)
  stubs = join(root, 'stubs');
  await cp(join(process.env.KP_ROOT ?? process.cwd(), 'test', 'bats', 'stubs'), stubs, { recursive: true });
  await rm(join(stubs, 'ctr'));
  await rm(join(stubs, 'containerd'));
  // keadm cannot run here: the bundle's keadm becomes the recording stand-in (and SHA256SUMS follows, so
  // verify.sh, which install.sh runs first, still passes).
  const keadm = '#!/bin/sh\nexec "$KP_STUB_DIR/keadm" "$@"\n';
  await writeFile(join(bundle, 'bin', 'keadm'), keadm, { mode: 0o755 });
  const sums = await readFile(join(bundle, 'SHA256SUMS'), 'utf8');
  await writeFile(join(bundle, 'SHA256SUMS'), sums.replace(/^[a-f0-9]{64}(  bin\/keadm)$/m, `${createHash('sha256').update(keadm).digest('hex')}$1`));
  containerd = await startContainerd({ address: join(sysroot, 'run', 'containerd', 'containerd.sock') });
});

after(async () => {
  await containerd?.stop();
  await world?.stop();
});

function install(): { code: number | null; out: string } {
  const state = join(root, 'state');
  // In a private network namespace (unshare -n): the installer reaches containerd by its unix socket and
  // nothing else; the node address it is given is unroutable there, so no probe can leave this machine.
  const r = spawnSync('unshare', ['-n', join(bundle, 'install.sh'), '--cloud', '192.168.10.10:10000', '--token', `${'a'.repeat(64)}.eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJl`, '--node-name', 'edge-01', '--timeout', '30'], {
    encoding: 'utf8',
    env: {
      ...process.env,
      PATH: `${stubs}:${process.env.PATH}`,
      KP_SYSROOT: sysroot,
      KP_SKIP_ROOT_CHECK: '1',
      KP_POLL_INTERVAL: '0',
      KP_STUB_DIR: stubs,
      KP_STUB_LOG: join(root, 'calls.log'),
      KP_STUB_STATE: state,
      KP_FAKE_UNAME_M: 'aarch64',
      KP_FAKE_EDGECORE_YAML: join(process.env.KP_ROOT ?? process.cwd(), 'test', 'fixtures', 'payload', 'edgecore-v1.22.yaml'),
    },
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

test('edge install.sh imports the bundle images into a real containerd with canonical names and the bundle platform', async () => {
  await mkdir(join(root, 'state'), { recursive: true });
  const r = install();
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /importing \d+ images \(linux\/arm64\)/);
  const ls = await listImages(containerd!);
  for (const ref of ['docker.io/kubeedge/installation-package:v1.22.0', 'docker.io/kubeedge/pause:3.6', 'docker.io/kubeedge/edgemesh-agent:v1.17.0']) {
    const line = ls.stdout.split('\n').find((l) => l.startsWith(`${ref} `));
    assert.ok(line, `${ref} listed:\n${ls.stdout}`);
    assert.match(line, /linux\/arm64/, line);
    assert.doesNotMatch(line, /linux\/amd64/, line);
  }
  const check = await containerd!.ctr(['-n', 'k8s.io', 'images', 'check']);
  assert.doesNotMatch(check.stdout, /incomplete|missing/i, check.stdout);
  // Every bundled image carries the label containerd's CRI reports as pinned (image GC keeps it).
  const bundled = JSON.parse(await readFile(join(bundle, 'bundle.json'), 'utf8')).images.list.map((i: { ref: string }) => i.ref) as string[];
  assert.ok(bundled.length >= 3);
  const assertPinned = async () => {
    const rows = (await listImages(containerd!)).rows;
    for (const ref of bundled) {
      const row = rows.find((r) => r[0] === ref);
      assert.ok(row, `${ref} listed`);
      assert.ok(row.some((col) => col.split(',').includes('io.cri-containerd.pinned=pinned')), `${ref} pinned: ${row.join(' ')}`);
    }
  };
  await assertPinned();
  assert.match(r.out, new RegExp(`pinning ${bundled.length} of ${bundled.length} bundled images`));

  // A second run finds every image present and imports nothing.
  const again = install();
  assert.equal(again.code, 0, again.out);
  assert.match(again.out, /bundled images are already in containerd/);
  assert.match(again.out, /all \d+ bundled images are pinned/);
  assert.doesNotMatch(again.out, /images label/);
  await assertPinned();
  assert.ok((await readdir(join(sysroot, 'etc', 'kubeedge', 'config'))).some((f) => f.startsWith('edgecore.yaml.bak.')));
});
