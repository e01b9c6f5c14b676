import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { sha256, startBundleWorld, type BundleWorld } from '../harness/bundle-world.js';
import { cycloneDx15Errors } from '../harness/cyclonedx.js';
import { captureIo } from '../harness/io.js';
import { runCli } from '../../src/cli.js';

/**
 * Reproducibility beyond one process (README "Reproducible output"): the CLI run as a child process, as a
 * person runs it, twice per case with another time zone, umask, output and cache directory; with
 * SOURCE_DATE_EPOCH unset (the manifest's sourceDateEpoch) and set; plain, gzip and zstd; amd64, arm and
 * a multi-arch build. The tarballs must be byte-identical, and Python's tarfile (test/harness/tarfacts.py,
 * no code shared with the product) reads back every entry, also inside images/images.tar: mtime, uid/gid
 * 0, no user/group names, modes, sorted order. And each bundle's sbom.cdx.json is valid CycloneDX 1.5.
 */
let world: BundleWorld;
const MANIFEST_EPOCH = 1764547200; // sourceDateEpoch in the bundle world's versions.yaml
const ENV_EPOCH = 1700000000;

before(async () => {
  for (const prog of ['python3', 'zstd', 'tar']) execFileSync('sh', ['-c', `command -v ${prog}`], { stdio: 'pipe' });
  world = await startBundleWorld();
});

after(async () => {
  await world?.stop();
});

interface Run {
  tz: string;
  umask: string;
  epoch?: number;
}

/** `kubeprepare build` in a child process with its own TZ, umask, --out and --cache-dir. */
function cliBuild(name: string, args: string[], run: Run): Promise<string> {
  const out = join(world.work, `out-${name}`);
  const root = process.env.KP_ROOT ?? process.cwd();
  const env: NodeJS.ProcessEnv = { ...process.env, CI: 'true', KP_OFFLINE: '1', TZ: run.tz };
  delete env.SOURCE_DATE_EPOCH;
  if (run.epoch !== undefined) env.SOURCE_DATE_EPOCH = String(run.epoch);
  const argv = [join(root, 'bin/kubeprepare.js'), 'build', ...args, '--manifest', world.manifestPath, '--out', out, '--cache-dir', join(world.work, `cache-${name}`)];
  const child = spawn('sh', ['-c', `umask ${run.umask} && exec "$0" "$@"`, process.execPath, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`build ${name} exited ${code}:\n${log}`))));
  });
}

interface Entry {
  name: string;
  type: string;
  mode: string;
  mtime: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  size: number;
  pax: string[];
  sha256?: string;
  entries?: Entry[];
}
interface Facts {
  compression: string;
  gzipHeader: { mtime: number; os: number } | null;
  tarSha256: string;
  entries: Entry[];
}

const tarfacts = (file: string): Facts => JSON.parse(execFileSync('python3', [join(process.env.KP_ROOT ?? process.cwd(), 'test/harness/tarfacts.py'), file], { encoding: 'utf8', maxBuffer: 1 << 26 })) as Facts;

/** Every tarball (and SHA256SUMS) two output directories hold is byte-identical; returns the names. */
async function sameBytes(a: string, b: string): Promise<string[]> {
  const names = (await readdir(a)).sort();
  assert.deepEqual((await readdir(b)).sort(), names);
  for (const n of names) assert.equal(sha256(await readFile(join(a, n))), sha256(await readFile(join(b, n))), `${n} differs between ${a} and ${b}`);
  // what the release job checks (README "Release"): sha256sum -c, then verify --arch <arch> on each tarball
  execFileSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: a });
  for (const n of names.filter((x) => x.includes('.tar'))) {
    const arch = /-linux-([a-z0-9]+)\.tar/.exec(n)![1]!;
    const io = captureIo();
    assert.equal(await runCli(['verify', join(a, n), '--arch', arch], io), 0, `verify ${n}: ${io.outText()}`);
  }
  return names;
}

/** The header facts of a bundle as read by tarfile, checked against the README's promises. */
function checkEntries(file: string, epoch: number): Facts {
  const f = tarfacts(file);
  const top = f.entries[0]!.name;
  assert.match(top, /^kubeprepare-(cloud|edge)-v1\.22\.0-linux-[a-z0-9]+\/$/, 'the first entry is the top directory');
  const inv = JSON.parse(execFileSync('tar', ['-xOf', file, `${top}bundle.json`], { maxBuffer: 1 << 26 }).toString('utf8')) as { sourceDateEpoch: number; files: { path: string; mode: string }[] };
  assert.equal(inv.sourceDateEpoch, epoch, 'bundle.json records the epoch used');
  const modes = new Map(inv.files.map((x) => [`${top}${x.path}`, `0o${Number.parseInt(x.mode, 8).toString(8)}`]));
  // The files that describe the others come last (their digests include the images archive's, known once it is written).
  const trailerOrder = ['bundle.json', 'sbom.cdx.json', 'SHA256SUMS'].map((n) => `${top}${n}`);
  const trailer = new Set(trailerOrder);
  const check = (entries: Entry[], where: string, modeOf: (e: Entry) => string | undefined, last: Set<string> = new Set()) => {
    assert.ok(entries.length > 0, where);
    for (const e of entries) {
      const what = `${where}: ${e.name}`;
      assert.equal(e.mtime, epoch, `${what} mtime`);
      assert.deepEqual([e.uid, e.gid, e.uname, e.gname], [0, 0, '', ''], `${what} owner`);
      assert.ok(e.type === 'file' || e.type === 'dir', `${what} type ${e.type}`);
      assert.deepEqual(e.pax, [], `${what}: no pax header needed for these paths`);
      assert.equal(e.mode, e.type === 'dir' ? '0o755' : (modeOf(e) ?? '0o644'), `${what} mode`);
    }
    const names = entries.map((e) => e.name);
    const body = names.filter((n) => !last.has(n));
    const tail = names.filter((n) => last.has(n));
    assert.deepEqual(names, [...[...body].sort(), ...trailerOrder.filter((n) => tail.includes(n))], `${where}: entries sorted by path${last.size ? '; bundle.json, the SBOM and SHA256SUMS last' : ''}`);
    for (const e of entries) {
      const parent = e.name.replace(/\/$/, '').replace(/[^/]+$/, '');
      if (parent) assert.ok(names.indexOf(parent) < names.indexOf(e.name), `${where}: ${parent} comes before ${e.name}`);
    }
  };
  check(f.entries, file, (e) => modes.get(e.name), trailer);
  assert.equal(f.entries.at(-1)!.name, `${top}SHA256SUMS`, `${file}: SHA256SUMS, which lists every other file, is the last entry`);
  const images = f.entries.find((e) => e.name === `${top}images/images.tar`);
  assert.ok(images?.entries, `${file}: images/images.tar read by tarfile`);
  check(images.entries, `${file} images/images.tar`, () => undefined);
  assert.ok(images.entries.some((e) => e.name === 'oci-layout') && images.entries.some((e) => /^blobs\/sha256\/[a-f0-9]{64}$/.test(e.name)));
  return f;
}

const A: Run = { tz: 'UTC', umask: '022' };
const B: Run = { tz: 'Pacific/Chatham', umask: '077' };

test('amd64, SOURCE_DATE_EPOCH unset, --sbom: two processes (other TZ, umask, out, cache) write identical bytes; tarfile reads back mtime = sourceDateEpoch, uid/gid 0, no names, modes, order', async () => {
  // the two runs really see other local times (else the TZ variation proves nothing)
  const offset = (tz: string) => execFileSync(process.execPath, ['-e', 'process.stdout.write(String(new Date(0).getTimezoneOffset()))'], { env: { ...process.env, TZ: tz }, encoding: 'utf8' });
  assert.notEqual(offset(A.tz), offset(B.tz));
  const [a, b] = await Promise.all([cliBuild('amd64-a', ['--arch', 'amd64', '--sbom'], A), cliBuild('amd64-b', ['--arch', 'amd64', '--sbom'], B)]);
  const names = await sameBytes(a, b);
  assert.deepEqual(names, ['SHA256SUMS', 'kubeprepare-cloud-v1.22.0-linux-amd64.tar', 'kubeprepare-edge-v1.22.0-linux-amd64.tar']);
  // each umask did apply (to the files written on this machine), and left the archives' content alone
  assert.equal((await stat(join(a, names[1]!))).mode & 0o077, 0o044, 'umask 022: readable by group and others');
  assert.equal((await stat(join(b, names[1]!))).mode & 0o077, 0, 'umask 077: private');
  for (const side of ['cloud', 'edge']) {
    const f = checkEntries(join(a, `kubeprepare-${side}-v1.22.0-linux-amd64.tar`), MANIFEST_EPOCH);
    assert.equal(f.compression, 'none');
    assert.ok(f.entries.some((e) => e.name.endsWith('/sbom.cdx.json')));
  }
});

test('arm, --compression gzip, SOURCE_DATE_EPOCH set: identical across processes; every mtime is SOURCE_DATE_EPOCH; the gzip header carries no time', async () => {
  const run = (r: Run) => ({ ...r, epoch: ENV_EPOCH });
  const [a, b] = await Promise.all([cliBuild('arm-gz-a', ['--arch', 'arm', '--compression', 'gzip'], run(A)), cliBuild('arm-gz-b', ['--arch', 'arm', '--compression', 'gzip'], run(B))]);
  const names = await sameBytes(a, b);
  assert.deepEqual(names, ['SHA256SUMS', 'kubeprepare-cloud-v1.22.0-linux-arm.tar.gz', 'kubeprepare-edge-v1.22.0-linux-arm.tar.gz']);
  for (const n of names.filter((x) => x.endsWith('.tar.gz'))) {
    const f = checkEntries(join(a, n), ENV_EPOCH);
    assert.equal(f.compression, 'gzip');
    assert.equal(f.gzipHeader?.mtime, 0, `${n}: gzip MTIME field is 0`);
  }
  // the arm bundle holds arm images (v7, or a lower variant containerd runs on armv7)
  const inv = JSON.parse(execFileSync('tar', ['-xzOf', join(a, 'kubeprepare-edge-v1.22.0-linux-arm.tar.gz'), 'kubeprepare-edge-v1.22.0-linux-arm/bundle.json'], { encoding: 'utf8' }));
  for (const i of inv.images.list) assert.match(i.platform, /^linux\/arm(\/v[5-7])?$/, i.ref);
});

test('multi-arch (--arch amd64,arm) with zstd: identical across processes; the amd64 tar inside the zstd output is byte for byte the single-arch plain build', async () => {
  const args = ['--arch', 'amd64,arm', '--compression', 'zstd', '--sbom'];
  const [a, b] = await Promise.all([cliBuild('multi-a', args, A), cliBuild('multi-b', args, B)]);
  const names = await sameBytes(a, b);
  assert.deepEqual(names, ['SHA256SUMS', ...['amd64', 'arm'].flatMap((arch) => [`kubeprepare-cloud-v1.22.0-linux-${arch}.tar.zst`, `kubeprepare-edge-v1.22.0-linux-${arch}.tar.zst`])].sort());
  for (const n of names.filter((x) => x.endsWith('.tar.zst'))) assert.equal(checkEntries(join(a, n), MANIFEST_EPOCH).compression, 'zstd');
  // compression changes nothing inside: the same bundle as the plain amd64 build of the first test
  const single = join(world.work, 'out-amd64-a');
  for (const side of ['cloud', 'edge']) {
    const inner = execFileSync('zstd', ['-dc', join(a, `kubeprepare-${side}-v1.22.0-linux-amd64.tar.zst`)], { maxBuffer: 1 << 26 });
    assert.equal(sha256(inner), sha256(await readFile(join(single, `kubeprepare-${side}-v1.22.0-linux-amd64.tar`))), `${side}: zstd content = plain tar`);
  }
});

test('SOURCE_DATE_EPOCH set and unset give different bytes only through the time: same entries and sizes, other mtimes', async () => {
  const arm = await cliBuild('arm-plain', ['--arch', 'arm', '--only', 'edge'], A);
  const withEnv = tarfacts(join(world.work, 'out-arm-gz-a', 'kubeprepare-edge-v1.22.0-linux-arm.tar.gz'));
  const without = checkEntries(join(arm, 'kubeprepare-edge-v1.22.0-linux-arm.tar'), MANIFEST_EPOCH);
  assert.notEqual(withEnv.tarSha256, without.tarSha256);
  const shape = (f: Facts) => f.entries.map((e) => `${e.name} ${e.mode} ${e.size}`);
  assert.deepEqual(shape(withEnv), shape(without));
  // apart from bundle.json (it records the epoch) and SHA256SUMS (which lists bundle.json), the content is the same
  const content = (f: Facts) => f.entries.filter((e) => !/\/(bundle\.json|SHA256SUMS|images\/images\.tar)$/.test(e.name)).map((e) => `${e.name} ${e.sha256 ?? ''}`);
  assert.deepEqual(content(withEnv), content(without));
});

test('sbom.cdx.json validates against the CycloneDX 1.5 JSON schema (Ajv), and the same validator rejects a wrong field', async () => {
  const docs: { name: string; doc: Record<string, unknown> }[] = [];
  for (const dir of ['out-amd64-a', 'out-multi-a']) {
    for (const n of await readdir(join(world.work, dir))) {
      if (!/\.tar(\.zst)?$/.test(n)) continue;
      const top = n.replace(/\.tar(\.zst)?$/, '');
      const text = execFileSync('tar', [...(n.endsWith('.zst') ? ['--zstd'] : []), '-xOf', join(world.work, dir, n), `${top}/sbom.cdx.json`], { encoding: 'utf8' });
      docs.push({ name: `${dir}/${n}`, doc: JSON.parse(text) as Record<string, unknown> });
    }
  }
  assert.equal(docs.length, 6, docs.map((d) => d.name).join(', '));
  for (const { name, doc } of docs) {
    assert.deepEqual(cycloneDx15Errors(doc), [], name);
    assert.equal(doc.specVersion, '1.5');
    assert.ok((doc.components as unknown[]).length > 0, name);
  }
  const good = docs[0]!.doc;
  const broken = (edit: (d: any) => void) => {
    const d = structuredClone(good);
    edit(d);
    return cycloneDx15Errors(d).map((e) => `${e.instancePath} ${e.message}`);
  };
  assert.match(broken((d) => (d.components[0].type = 'docker-image')).join('\n'), /^\/components\/0\/type must be equal to one of the allowed values/m);
  assert.match(broken((d) => (d.components[0].hashes[0].alg = 'SHA256')).join('\n'), /^\/components\/0\/hashes\/0\/alg must be equal to one of the allowed values/m);
  assert.match(broken((d) => (d.components[0].hashes[0].content = 'not-hex')).join('\n'), /^\/components\/0\/hashes\/0\/content must match pattern/m);
  assert.match(broken((d) => (d.metadata.timestamp = '2025-12-01 00:00')).join('\n'), /^\/metadata\/timestamp must match format "date-time"/m);
  assert.match(broken((d) => (d.serialNumber = 'urn:uuid:not-a-uuid')).join('\n'), /^\/serialNumber must match pattern/m);
  assert.match(broken((d) => (d.kubeprepare = true)).join('\n'), /must NOT have additional properties/);
});
