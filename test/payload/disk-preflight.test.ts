import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { startBundleWorld, CLOUD, EDGE, type BundleWorld } from '../harness/bundle-world.js';

/**
 * Disk preflight for real: the installers of a REAL built bundle run with their system root on a small
 * tmpfs mounted in a private mount namespace (`unshare -m`), so `df` measures a filesystem that really is
 * too small. They refuse (exit 3) before changing anything, naming the numbers; on a large enough tmpfs
 * the check passes (shown by --dry-run).
 */
let world: BundleWorld;
let root: string;
let stubs: string;
const bundles: Record<'cloud' | 'edge', string> = { cloud: '', edge: '' };

before(async () => {
  assert.equal(process.getuid?.(), 0, 'mounting a tmpfs in a private mount namespace needs root');
  execFileSync('sh', ['-c', 'command -v unshare && command -v df'], { stdio: 'pipe' });
  world = await startBundleWorld();
  root = await mkdtemp(join(tmpdir(), 'kp-disk-'));
  const built = await world.build(join(root, 'out'));
  execFileSync('tar', ['xf', built.cloud, '-C', root]);
  execFileSync('tar', ['xf', built.edge, '-C', root]);
  bundles.cloud = join(root, CLOUD);
  bundles.edge = join(root, EDGE);
  stubs = join(root, 'stubs');
  await cp(join(process.env.KP_ROOT ?? process.cwd(), 'test', 'bats', 'stubs'), stubs, { recursive: true });
});

after(async () => {
  await world?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

const ARGS = {
  edge: ['--cloud', '192.168.10.10:10000', '--token', `${'a'.repeat(64)}.eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJl`, '--node-name', 'edge-01', '--timeout', '5'],
  cloud: ['--advertise-address', '192.168.10.10', '--node-name', 'cloud-01', '--timeout', '5'],
};

/** Runs a side's install.sh with KP_SYSROOT on a fresh tmpfs of `size`, in a private mount namespace. */
async function install(side: 'cloud' | 'edge', size: string, extra: string[] = []): Promise<{ code: number | null; out: string; sysroot: string }> {
  const sysroot = join(root, `sysroot-${side}-${size}-${extra.length}`);
  await mkdir(sysroot, { recursive: true });
  const state = join(root, `state-${side}-${size}-${extra.length}`);
  await mkdir(state, { recursive: true });
  // The world's edge bundle carries no complete runtime: the host "has" containerd (the stub, at
  // usr/bin/containerd of the tmpfs root, put there before the installer starts).
  const script =
    'mount -t tmpfs -o "size=$1" kp-disk-test "$2" || exit 99; if [ -n "$HOST_CONTAINERD" ]; then mkdir -p "$2/usr/bin" && cp "$HOST_CONTAINERD" "$2/usr/bin/containerd"; fi; shift 2; "$@"; rc=$?; ls -A "$KP_SYSROOT" > "$KP_STUB_STATE/sysroot-after"; exit $rc';
  const r = spawnSync('unshare', ['-m', '-n', '--propagation', 'private', 'bash', '-c', script, 'kp', size, sysroot, join(bundles[side], 'install.sh'), ...ARGS[side], ...extra], {
    encoding: 'utf8',
    env: {
      ...process.env,
      PATH: `${stubs}:${process.env.PATH}`,
      KP_SYSROOT: sysroot,
      KP_SKIP_ROOT_CHECK: '1',
      KP_POLL_INTERVAL: '0',
      KP_STUB_DIR: stubs,
      KP_STUB_LOG: join(state, 'calls.log'),
      KP_STUB_STATE: state,
      KP_FAKE_UNAME_M: 'aarch64',
      HOST_CONTAINERD: side === 'edge' ? join(stubs, 'containerd') : '',
    },
  });
  const after = await readFile(join(state, 'sysroot-after'), 'utf8').catch(() => '');
  return { code: r.status, out: `${r.stdout}${r.stderr}\n[sysroot after: ${after.trim().split('\n').join(' ')}]`, sysroot };
}

for (const side of ['edge', 'cloud'] as const) {
  test(`${side} install.sh on a 64 KiB filesystem: refuses with exit 3 before changing anything, naming needed, free and the paths`, async () => {
    const r = await install(side, '64k');
    assert.equal(r.code, 3, r.out);
    const m = new RegExp(`not enough disk space: ${r.sysroot.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} needs (\\d+) KiB, (\\d+) KiB free, for ([^\\n]+)`).exec(r.out);
    assert.ok(m, r.out);
    assert.ok(Number(m[1]) > Number(m[2]), m[0]);
    assert.ok(Number(m[2]) <= 64, m[0]);
    assert.match(m[3]!, side === 'edge' ? /\/var\/lib\/containerd \(image blobs/ : /\/var\/lib\/rancher\/k3s\/agent\/images \(copy of images\/images\.tar/);
    // Nothing installed: only the log file the installer keeps (var/log) was written (usr/: the host's containerd).
    assert.match(r.out, side === 'edge' ? /\[sysroot after: usr var\]/ : /\[sysroot after: var\]/);
    assert.equal(existsSync(join(r.sysroot, 'usr', 'local')), false);
  });

  test(`${side} install.sh --dry-run on a 64 MiB filesystem shows the disk check, which passes`, async () => {
    const r = await install(side, '64m', ['--dry-run']);
    assert.doesNotMatch(r.out, /not enough disk space/);
    const m = new RegExp(`disk: ${r.sysroot.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} has (\\d+) KiB free, needs (\\d+) KiB`).exec(r.out);
    assert.ok(m, r.out);
    assert.ok(Number(m[2]) > 0 && Number(m[2]) < Number(m[1]), m[0]);
  });
}

test('bundle.json states the disk needs per install step, and disk.tsv carries the same lines', async () => {
  for (const side of ['cloud', 'edge'] as const) {
    const inv = JSON.parse(await readFile(join(bundles[side], 'bundle.json'), 'utf8'));
    assert.ok(inv.disk.unpackedBundleBytes > 0);
    const tsv = (await readFile(join(bundles[side], inv.disk.file), 'utf8')).split('\n').filter((l) => l && !l.startsWith('#'));
    assert.equal(tsv.length, inv.disk.steps.length);
    inv.disk.steps.forEach((s: { step: string; path: string; bytes: number }, i: number) => {
      assert.equal(tsv[i], `${s.step}\t${s.path}\t${Math.ceil(s.bytes / 1024)}\t${tsv[i]!.split('\t')[3]}`);
    });
    const steps = new Set(inv.disk.steps.map((s: { step: string }) => s.step));
    assert.deepEqual([...steps].sort(), side === 'cloud' ? ['images', 'k3s', 'keadm'] : ['images', 'join', 'runtime']);
  }
});
