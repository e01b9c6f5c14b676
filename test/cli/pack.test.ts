import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, readdir, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT, TOOL_VERSION } from '../../src/version.js';
import { runCli } from '../../src/cli.js';
import { captureIo } from '../harness/io.js';

/**
 * The published package works on its own (issue 16 item 8): `npm pack` builds dist/ (prepack) in a copy
 * of the sources that has none, the tarball installs into an empty folder, and its `kubeprepare` prints
 * the version and renders the same scripts as this checkout. The install takes dependencies from the npm
 * cache (--offline); where the cache lacks one it asks the configured npm registry (the only address
 * besides loopback this test may reach; the first run on a fresh machine fills the cache).
 */
function sh(cmd: string, args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, maxBuffer: 64 << 20, timeout: 480_000, env: { ...process.env, npm_config_update_notifier: 'false' } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function listFiles(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p, base)));
    else out.push(p.slice(base.length + 1));
  }
  return out.sort();
}

test('npm pack builds dist/ first; the tarball installed into an empty folder runs --version and render', { timeout: 900_000 }, async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'kp-pack-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  // a copy of the sources without dist/, so only prepack can have built what the tarball holds
  const src = join(work, 'src');
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'README.md', 'bin', 'src', 'scripts', 'manifests', 'scripts-templates']) {
    await cp(join(PACKAGE_ROOT, f), join(src, f), { recursive: true });
  }
  await symlink(await realpath(join(PACKAGE_ROOT, 'node_modules')), join(src, 'node_modules'));
  const packed = await sh('npm', ['pack', '--json', '--pack-destination', work], src);
  assert.equal(packed.code, 0, packed.stderr);
  const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  const files = info!.files.map((f) => f.path);
  for (const f of ['bin/kubeprepare.js', 'dist/main.js', 'dist/main.bundle.js', 'dist/cli-options.js', 'dist/commands/render.js', 'manifests/versions.yaml', 'scripts-templates/cloud/install.sh', 'package.json']) {
    assert.ok(files.includes(f), `the tarball holds ${f}`);
  }
  assert.ok(!files.some((f) => /^(src|test|bench)\//.test(f)), 'no sources, tests or benches in the tarball');

  const app = join(work, 'app');
  await cp(join(work, info!.filename), join(app, info!.filename));
  await writeFile(join(app, 'package.json'), '{ "name": "kp-pack-test", "private": true }\n');
  const flags = ['install', '--no-audit', '--no-fund', '--ignore-scripts', `./${info!.filename}`];
  let installed = await sh('npm', [...flags, '--offline'], app);
  if (installed.code !== 0 && /ENOTCACHED/.test(installed.stderr)) {
    t.diagnostic('dependencies not all in the npm cache: installing from the npm registry');
    installed = await sh('npm', [...flags, '--prefer-offline'], app);
  }
  assert.equal(installed.code, 0, installed.stderr);

  const bin = join(app, 'node_modules', '.bin');
  for (const name of ['kubeprepare', 'bundle']) {
    const v = await sh(join(bin, name), ['--version'], app);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout.trim(), TOOL_VERSION);
  }
  const out = join(work, 'rendered');
  const r = await sh(join(bin, 'kubeprepare'), ['render', '--arch', 'arm64', '--out', out], app);
  assert.equal(r.code, 0, r.stderr);
  const cloud = join(out, `kubeprepare-cloud-v1.22.2-linux-arm64`);
  assert.match(r.stdout, new RegExp(`^${cloud}  \\(\\d+ files\\)$`, 'm'));
  const install = await readFile(join(cloud, 'install.sh'), 'utf8');
  assert.match(install, /^readonly MOSQUITTO_ENABLED=true$/m);
  assert.ok(existsSync(join(out, 'kubeprepare-edge-v1.22.2-linux-arm64', 'install.sh')));

  // the installed package renders exactly what this checkout renders
  const here = join(work, 'rendered-here');
  const io = captureIo();
  assert.equal(await runCli(['render', '--arch', 'arm64', '--out', here], io), 0, io.errText());
  const names = await listFiles(out);
  assert.deepEqual(names, await listFiles(here));
  for (const f of names) assert.equal(await readFile(join(out, f), 'utf8'), await readFile(join(here, f), 'utf8'), f);
});
