import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { captureIo } from '../harness/io.js';
import { runCli } from '../../src/cli.js';
import { CLOUD, EDGE, fakeElf, sha256, startBundleWorld, type BundleWorld } from '../harness/bundle-world.js';
import { flipByte, startProxy, type TestProxy } from '../harness/proxy.js';

/**
 * Issue 12 items 4 and 5, end to end on real bundles: a cache entry changed in place (same size) is
 * repaired or fails the build, and never ends up in a bundle that `verify` rejects; a build that fails
 * or is SIGKILLed while the images archive (streamed into its bundle tarball), a bundle tarball or SHA256SUMS is being written leaves no file that
 * looks finished, no temp file once the next build ran, and the previous output of the same names as it was.
 */
let world: BundleWorld;
let proxy: TestProxy;
let n = 0;

before(async () => {
  world = await startBundleWorld();
  proxy = await startProxy(world.registry.url);
  // The same images through the fault proxy (for the images.tar cases).
  await writeFile(join(world.work, 'registries-proxy.yaml'), `mirrors:\n  docker.io:\n    endpoint: ["${proxy.url}"]\n  registry.k8s.io:\n    endpoint: ["${proxy.url}"]\n`);
});
after(async () => {
  await proxy?.close();
  await world?.stop();
});

const RUNC = '/gh/opencontainers/runc/releases/download/v1.3.3/runc.arm64';
const KEADM = '/gh/kubeedge/kubeedge/releases/download/v1.22.0/keadm-v1.22.0-linux-arm64.tar.gz';
const dir = (name: string) => join(world.work, `${name}-${++n}`);
const build = (out: string, cache: string, extra: string[] = []) => world.run(['build', '--arch', 'arm64', '--out', out, '--cache-dir', cache, ...extra]);

async function verify(tarball: string): Promise<{ code: number; out: string }> {
  const io = captureIo();
  const code = await runCli(['verify', tarball, '--json'], io);
  return { code, out: io.outText() };
}

/** Every tarball in `out` passes `kubeprepare verify`, and `sha256sum -c SHA256SUMS` holds. */
async function assertVerified(out: string): Promise<void> {
  const tars = (await readdir(out)).filter((f) => f.endsWith('.tar'));
  assert.ok(tars.length > 0, `tarballs in ${out}`);
  for (const t of tars) {
    const v = await verify(join(out, t));
    assert.equal(v.code, 0, `verify ${t}: ${v.out}`);
    assert.equal(JSON.parse(v.out).ok, true);
  }
  execFileSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: out });
}

/** The digests of the files in `out` not named like temp files (those: `temps`). */
async function snapshot(out: string): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  for (const f of (await readdir(out)).sort()) if (!f.startsWith('.')) m.set(f, sha256(await readFile(join(out, f))));
  return m;
}

/** Layer digests (hex) of each image of a bundle (`top`: CLOUD or EDGE) in `out`, from the cache the build used. */
async function bundleLayers(cache: string, out: string, top = CLOUD): Promise<Map<string, string[]>> {
  const index = JSON.parse(execFileSync('sh', ['-c', 'tar xOf "$0" "$1" | tar xO index.json', join(out, `${top}.tar`), `${top}/images/images.tar`], { encoding: 'utf8' })) as {
    manifests: { digest: string; annotations: Record<string, string> }[];
  };
  const layers = new Map<string, string[]>();
  for (const e of index.manifests) {
    const man = JSON.parse(await readFile(join(cache, 'blobs', 'sha256', e.digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
    layers.set(e.annotations['io.containerd.image.name']!, man.layers.map((l) => l.digest.slice(7)));
  }
  return layers;
}

/** The digest of the last layer of the cloud bundle's cloudcore image. */
async function cachedLayer(cache: string, out: string): Promise<string> {
  return (await bundleLayers(cache, out)).get('docker.io/kubeedge/cloudcore:v1.22.0')!.at(-1)!;
}

async function flipFile(file: string): Promise<Buffer> {
  const good = await readFile(file);
  await writeFile(file, flipByte(Math.floor(good.length / 2))(good));
  return good;
}

test('a cached layer, binary download and extracted binary changed in place are fetched again; the bundles verify', async () => {
  const cache = dir('cache');
  const first = dir('out');
  let r = await build(first, cache);
  assert.equal(r.code, 0, r.err);
  const layer = join(cache, 'blobs', 'sha256', await cachedLayer(cache, first));
  const runc = join(cache, 'blobs', 'sha256', sha256(fakeElf(0xb7, 'runc arm64\n')));
  const extracted = join(cache, 'extracted');
  const [archiveDir] = await readdir(extracted);
  const keadmDir = join(extracted, archiveDir!);
  const keadm = join(keadmDir, (await readdir(keadmDir)).find((f) => !f.endsWith('.json'))!);
  const goods = new Map<string, Buffer>();
  for (const f of [layer, runc, keadm]) goods.set(f, await flipFile(f));
  const before = { runc: world.files.count(RUNC), keadm: world.files.count(KEADM) };

  const second = dir('out');
  r = await build(second, cache);
  assert.equal(r.code, 0, r.err);
  await assertVerified(second);
  // Same inputs, so the repaired build has the first build's bytes.
  assert.deepEqual(await snapshot(second), await snapshot(first));
  for (const [f, good] of goods) assert.ok((await readFile(f)).equals(good), `${f} repaired in the cache`);
  assert.equal(world.files.count(RUNC), before.runc + 1, 'runc downloaded again, once');
  assert.equal(world.files.count(KEADM), before.keadm, 'the keadm download was intact: extracted again from it');
});

test('a cached download hashed while it is extracted again: one that does not match is downloaded again', async () => {
  const cache = dir('cache');
  const first = dir('out');
  let r = await build(first, cache, ['--only', 'edge']);
  assert.equal(r.code, 0, r.err);
  const keadm = join(cache, 'blobs', 'sha256', sha256(world.files.files.get(KEADM)!));
  const good = await flipFile(keadm);
  await rm(join(cache, 'extracted'), { recursive: true, force: true }); // extracted again from the download
  const before = world.files.count(KEADM);
  const second = dir('out');
  r = await build(second, cache, ['--only', 'edge']);
  assert.equal(r.code, 0, r.err);
  assert.equal(world.files.count(KEADM), before + 1, 'downloaded again');
  assert.ok((await readFile(keadm)).equals(good));
  assert.deepEqual(await snapshot(second), await snapshot(first));
  await assertVerified(second);
});

test('a corrupt cached binary that cannot be fetched again fails naming it, its path and the fix; nothing finished-looking is written', async () => {
  const cache = dir('cache');
  const out = dir('out');
  let r = await build(out, cache, ['--only', 'edge']);
  assert.equal(r.code, 0, r.err);
  const previous = await snapshot(out);
  const runc = join(cache, 'blobs', 'sha256', sha256(fakeElf(0xb7, 'runc arm64\n')));
  await flipFile(runc);
  const good = world.files.files.get(RUNC)!;
  world.files.files.delete(RUNC); // the release server no longer has it: 404
  try {
    r = await build(out, cache, ['--only', 'edge']);
  } finally {
    world.files.files.set(RUNC, good);
  }
  assert.equal(r.code, 1, r.err);
  assert.match(r.err, new RegExp(`runc: the cached download http://127\\.0\\.0\\.1:\\d+${RUNC.replace(/[.+]/g, '\\$&')}: ${runc} does not match the digest recorded for it \\(expected sha256:[a-f0-9]{64}, got sha256:[a-f0-9]{64}\\); it was removed from the cache, and fetching it again failed: .*HTTP 404`));
  assert.match(r.err, /empty --cache-dir/);
  assert.deepEqual(await snapshot(out), previous, 'the previous output is untouched, nothing else is there');
  assert.deepEqual(await temps(out), [], 'no temp file left');
  await assertVerified(out);
});

/** Spawns the CLI (a real process, to be killed); resolves its exit. */
function spawnBuild(out: string, cache: string, env: Record<string, string>, extra: string[] = []): { child: ChildProcess; log: () => string; exit: Promise<number | null> } {
  const root = process.env.KP_ROOT ?? process.cwd();
  const child = spawn(process.execPath, [join(root, 'bin/kubeprepare.js'), 'build', '--arch', 'arm64', '--manifest', world.manifestPath, '--out', out, '--cache-dir', cache, ...extra], {
    env: { ...process.env, CI: 'true', KP_OFFLINE: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, log: () => log, exit };
}

async function until(what: string, cond: () => Promise<boolean> | boolean, log: () => string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${log()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Files (recursively) under `out` whose names are temp names, with their sizes. */
async function temps(out: string): Promise<{ path: string; size: number }[]> {
  const found: { path: string; size: number }[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.startsWith('.') || e.name.endsWith('.partial')) {
        // A running build renames or removes its temp files at any moment: one gone since readdir is not there.
        const st = await stat(p).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? null : Promise.reject(err)));
        if (st) found.push({ path: p, size: st.size });
      }
    }
  };
  await walk(out);
  return found;
}

/**
 * A previous good build in `out` (another SOURCE_DATE_EPOCH, so that the interrupted build would write
 * other bytes), then `interrupt` stops a new build mid-write; afterwards only the previous output is
 * there, byte for byte, and the next build (in a new process) removes what a killed one left.
 */
async function interrupted(name: string, interrupt: (out: string, cache: string) => Promise<{ killed: boolean; partial: RegExp }>): Promise<void> {
  const out = dir(name);
  const cache = dir('cache');
  const prev = spawnBuild(out, cache, { SOURCE_DATE_EPOCH: '1700000000' });
  assert.equal(await prev.exit, 0, prev.log());
  const previous = await snapshot(out);
  assert.deepEqual([...previous.keys()], ['SHA256SUMS', `${CLOUD}.tar`, `${EDGE}.tar`]);

  const { killed, partial } = await interrupt(out, cache);
  assert.deepEqual(await snapshot(out), previous, 'the previous output is untouched and nothing that looks finished was added');
  const tmp = await temps(out);
  if (killed) {
    assert.ok(tmp.some((t) => partial.test(t.path) && t.size > 0), `the killed build was stopped mid-write of ${partial}: ${JSON.stringify(tmp)}`);
  } else {
    assert.deepEqual(tmp, [], 'a failed build removes its temp files');
  }
  // The next build cleans what a killed one left, and writes the new output.
  const next = spawnBuild(out, cache, {});
  assert.equal(await next.exit, 0, next.log());
  assert.deepEqual(await temps(out), [], 'no temp file left');
  const now = await snapshot(out);
  assert.deepEqual([...now.keys()], [...previous.keys()]);
  assert.notEqual(now.get(`${CLOUD}.tar`), previous.get(`${CLOUD}.tar`), 'the new build writes other bytes (so "untouched" above means something)');
  await assertVerified(out);
}

for (const mode of ['fail', 'kill'] as const) {
  test(`images archive: a build that ${mode === 'fail' ? 'fails' : 'is SIGKILLed'} while streaming it into a tarball (registry stalls/refuses a blob)`, async () => {
    await interrupted(`images-${mode}`, async (out, cache) => {
      // The edge bundle's images archive, streamed into its tarball as the blobs arrive, in digest order:
      // stall (or refuse) the last of the blobs only the edge side has, so that the others are in the
      // temp tarball. A cold cache, so that the blobs come through the proxy.
      const cloud = new Set([...(await bundleLayers(cache, out)).values()].flat());
      const last = [...new Set([...(await bundleLayers(cache, out, EDGE)).values()].flat())].filter((d) => !cloud.has(d)).sort().at(-1)!;
      let stalled = false;
      proxy.setRule((req) => {
        if (req.method !== 'GET' || !req.url?.endsWith(`/blobs/sha256:${last}`)) return undefined;
        stalled = true;
        return mode === 'kill' ? { type: 'hang' } : { type: 'respond', status: 404, body: '{"errors":[{"code":"BLOB_UNKNOWN"}]}' };
      });
      try {
        const b = spawnBuild(out, `${cache}-cold`, { SOURCE_DATE_EPOCH: '1710000000' }, ['--registries', join(world.work, 'registries-proxy.yaml')]);
        if (mode === 'fail') {
          assert.equal(await b.exit, 1, b.log());
          assert.match(b.log(), /not found at http:\/\/127\.0\.0\.1:\d+\/v2\/.*\/blobs\/sha256:/);
          return { killed: false, partial: /images\.tar/ };
        }
        const partial = new RegExp(`/\\.${EDGE}\\.tar\\.\\d+\\.[a-f0-9]{8}\\.partial$`);
        // Stalled, and the temp tarball has stopped growing: it holds the edge blobs before the stalled one.
        let seen = -1;
        await until('a partial edge tarball that stopped at the stalled blob', async () => {
          const size = (await temps(out)).find((t) => partial.test(t.path))?.size ?? -1;
          const still = stalled && size > 2048 && size === seen;
          seen = size;
          if (!still) await new Promise((r) => setTimeout(r, 200));
          return still;
        }, b.log);
        b.child.kill('SIGKILL');
        await b.exit;
        return { killed: true, partial };
      } finally {
        proxy.setRule(undefined);
      }
    });
  });

  // bundle-tarball#2: the edge tarball, written after the cloud one is complete (and staged).
  for (const [phase, partial] of [
    ['bundle-tarball#2', new RegExp(`/\\.${EDGE}\\.tar\\.\\d+\\.[a-f0-9]{8}\\.partial$`)],
    ['checksums', /\/\.SHA256SUMS\.\d+\.[a-f0-9]{8}\.partial$/],
  ] as const) {
    test(`${phase}: a build that ${mode === 'fail' ? 'fails' : 'is SIGKILLed'} while writing it`, async () => {
      await interrupted(`${phase}-${mode}`, async (out, cache) => {
        const b = spawnBuild(out, cache, { SOURCE_DATE_EPOCH: '1710000000', KUBEPREPARE_TEST_FAIL_AT: `${phase}:${mode === 'fail' ? 'fail' : 'hang'}` });
        if (mode === 'fail') {
          assert.equal(await b.exit, 1, b.log());
          assert.match(b.log(), new RegExp(`injected failure while writing \\(${phase.split('#')[0]} #${phase.split('#')[1] ?? 1}\\)`));
          return { killed: false, partial };
        }
        await until(`the ${phase} fault point`, () => b.log().includes(`KUBEPREPARE_TEST_FAIL_AT: ${phase.split('#')[0]} #${phase.split('#')[1] ?? 1} reached`), b.log);
        await until(`a partial ${phase} file`, async () => (await temps(out)).some((t) => partial.test(t.path) && t.size > 0), b.log);
        b.child.kill('SIGKILL');
        await b.exit;
        return { killed: true, partial };
      });
    });
  }
}

test('stale temp files are removed only when their writer is gone', async () => {
  const out = dir('stale');
  const cache = dir('cache');
  const sleeper = spawn('sleep', ['60']);
  try {
    const { mkdir } = await import('node:fs/promises');
    await mkdir(out, { recursive: true });
    const dead = 2 ** 22 + 1; // above the default pid_max of 4194304: never a live process
    const mine = [`.SHA256SUMS.${dead}.0123abcd.partial`, `.${CLOUD}.tar.${dead}.89abcdef.partial`];
    const theirs = [`.SHA256SUMS.${sleeper.pid}.0123abcd.partial`, 'notes.partial', '.keep'];
    for (const f of [...mine, ...theirs]) await writeFile(join(out, f), 'x');
    await mkdir(join(out, `.kubeprepare-work-${dead}`));
    await writeFile(join(out, `.kubeprepare-work-${dead}`, 'x-images.tar'), 'x');
    const r = await build(out, cache, ['--only', 'edge']);
    assert.equal(r.code, 0, r.err);
    const names = await readdir(out);
    for (const f of [...mine, `.kubeprepare-work-${dead}`]) assert.ok(!names.includes(f), `${f} removed`);
    for (const f of theirs) assert.ok(names.includes(f), `${f} kept (a live writer's, or not our naming)`);
  } finally {
    sleeper.kill();
    await rm(out, { recursive: true, force: true });
  }
});
