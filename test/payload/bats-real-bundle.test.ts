// The bats suites' argument, --help, --dry-run, verify and arch tests of cloud and edge install.sh, run on
// the scripts of REAL built bundles: `kubeprepare build` against a local registry and release server
// (test/harness/bundle-world.ts), the tarballs unpacked with GNU tar, and the bats tests pointed at the
// unpacked directories (KP_REAL_BUNDLE_CLOUD/EDGE, see test/bats/helpers/common.bash kp_setup). Every
// script of both bundles also answers --help and is shellcheck clean as shipped.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { startBundleWorld, fakeElf, sha256, CLOUD, EDGE, type BundleWorld } from '../harness/bundle-world.js';
import { makeContext } from '../fixtures/payload/context.js';
import { renderSide } from '../../src/render/render.js';
import { REPO_ROOT, TEMPLATES_ROOT } from './helpers.js';

let world: BundleWorld;
let root: string;
const dirs: Record<'cloud' | 'edge', string> = { cloud: '', edge: '' };

/**
 * The world's manifest ships no CNI plugins, so its arm64 edge bundle carries no runtime; the real
 * manifest's does (containerd, runc and CNI plugins for amd64/arm64). Served and listed here as
 * manifests/versions.yaml lists them, so the edge bundle is the one that ships.
 */
async function addCniPlugins(w: BundleWorld): Promise<void> {
  const src = await mkdtemp(join(tmpdir(), 'kp-cni-'));
  for (const p of ['bridge', 'host-local', 'loopback', 'portmap']) await writeFile(join(src, p), fakeElf(0xb7, `${p} arm64\n`), { mode: 0o755 });
  execFileSync('tar', ['czf', join(src, 'cni.tgz'), '-C', src, 'bridge', 'host-local', 'loopback', 'portmap']);
  const tgz = await readFile(join(src, 'cni.tgz'));
  await rm(src, { recursive: true, force: true });
  const base = '/gh/containernetworking/plugins/releases/download/v1.8.0/cni-plugins-linux-arm64-v1.8.0.tgz';
  w.files.files.set(base, tgz);
  w.files.files.set(`${base}.sha256`, Buffer.from(`${sha256(tgz)}  cni-plugins-linux-arm64-v1.8.0.tgz\n`));
  const manifest = await readFile(w.manifestPath, 'utf8');
  await writeFile(
    w.manifestPath,
    `${manifest}  cniPlugins:
    version: v1.8.0
    binaries:
      - name: cni-plugins
        role: cniPluginsTarball
        sides: [edge]
        arches: [amd64, arm64]
        url: https://github.com/containernetworking/plugins/releases/download/{version}/cni-plugins-linux-{arch}-{version}.tgz
        dest: runtime/cni-plugins-linux-{arch}-{version}.tgz
        sha256: { checksumUrl: 'https://github.com/containernetworking/plugins/releases/download/{version}/cni-plugins-linux-{arch}-{version}.tgz.sha256' }
`,
  );
}

before(async () => {
  world = await startBundleWorld();
  await addCniPlugins(world);
  root = await mkdtemp(join(tmpdir(), 'kp-real-bats-'));
  const built = await world.build(join(root, 'out'));
  for (const [side, tarball, top] of [['cloud', built.cloud, CLOUD], ['edge', built.edge, EDGE]] as const) {
    execFileSync('tar', ['xf', tarball, '-C', root]);
    dirs[side] = join(root, top);
    // the context that bundle was rendered with, for the tests that read a value of it (kp_ctx)
    await writeFile(`${dirs[side]}.context.json`, JSON.stringify(await makeContext(side, 'arm64', world.manifestPath)));
  }
  assert.ok((await makeContext('edge', 'arm64', world.manifestPath)).runtimeBundled, 'the built edge bundle carries its runtime');
});

after(async () => {
  await world?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

async function scriptsOf(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.sh') && !e.name.startsWith('k3s-install')) out.push(join(e.parentPath, e.name));
  }
  return out.sort();
}

// The payload tests (render, bats, shellcheck) render with makeContext (test/fixtures/payload/context.ts):
// what they test is what ships only if that context renders, for the same manifest, the very files the
// build wrote. A context kept by hand, or one that drifted from buildRenderContext, fails here.
test('the payload tests\' render context renders exactly the files the built bundles ship', async () => {
  for (const side of ['cloud', 'edge'] as const) {
    const rendered = await renderSide(TEMPLATES_ROOT, await makeContext(side, 'arm64', world.manifestPath));
    assert.ok(rendered.some((f) => f.path === "install.sh") && rendered.some((f) => f.path === "verify.sh"), `${side}: ${rendered.map((f) => f.path).join(" ")}`);
    for (const f of rendered) {
      const shipped = await readFile(join(dirs[side], f.path), 'utf8');
      assert.ok(shipped === f.content, `${side}:${f.path} as rendered by the payload tests differs from the built bundle's`);
    }
  }
});

test('every script of the built cloud and edge bundles: --help, unknown flag exits 2, shellcheck clean', async () => {
  for (const side of ['cloud', 'edge'] as const) {
    const scripts = await scriptsOf(dirs[side]);
    assert.ok(scripts.some((s) => s.endsWith('/install.sh')), `${side}: install.sh in ${scripts.join(' ')}`);
    for (const s of scripts) {
      const rel = `${side}:${relative(dirs[side], s)}`;
      const help = spawnSync(s, ['--help'], { encoding: 'utf8' });
      assert.equal(help.status, 0, `${rel} --help: ${help.stderr}`);
      assert.match(help.stdout, /^Usage: /m, rel);
      const bad = spawnSync(s, ['--no-such-flag'], { encoding: 'utf8' });
      assert.equal(bad.status, 2, `${rel} --no-such-flag: ${bad.status} ${bad.stderr}`);
    }
    const sc = spawnSync('shellcheck', ['--shell=bash', '--severity=style', ...scripts], { encoding: 'utf8' });
    assert.equal(sc.error, undefined, `shellcheck: ${sc.error?.message}`);
    assert.equal(sc.status, 0, `${side} bundle as built:\n${sc.stdout}${sc.stderr}`);
  }
});

test('bats: argument, --dry-run, verify and arch tests of cloud and edge install.sh on the built bundles', { timeout: 10 * 60 * 1000 }, () => {
  const filter = 'is required|are required|bad |unknown flag|--flag=value|dry-run|damaged bundle|wrong architecture';
  const r = spawnSync(join(REPO_ROOT, 'test/bats/helpers/sandbox.sh'), [root, 'bats', '--tap', '--filter', filter, join(REPO_ROOT, 'test/bats/cloud-install.bats'), join(REPO_ROOT, 'test/bats/edge-install.bats')], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: { ...process.env, TMPDIR: root, KP_REAL_BUNDLE_CLOUD: dirs.cloud, KP_REAL_BUNDLE_EDGE: dirs.edge },
    maxBuffer: 64 * 1024 * 1024,
  });
  const out = `${r.stdout}${r.stderr}`;
  const total = Number(/^1\.\.(\d+)/m.exec(out)?.[1] ?? 0);
  // cloud: required, bad IPs, unknown flag, --flag=value, --dry-run, damaged, wrong arch; edge: required, bad
  // address, bad token, --dry-run
  assert.ok(total >= 11, `expected at least 11 tests selected, got ${total}:\n${out}`);
  assert.equal(r.status, 0, out);
  for (const side of ['cloud', 'edge']) assert.match(out, new RegExp(`^ok \\d+ ${side} install: .*dry-run`, 'm'), `${side} dry-run test ran`);
});
