import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { captureIo } from '../harness/io.js';
import { runCli } from '../../src/cli.js';
import { gnuTar, pyTamper } from '../harness/tamper.js';
import { CLOUD, EDGE, sha256, startBundleWorld, type BundleWorld } from './world.js';

/**
 * Every problem kind `kubeprepare verify` reports (src/bundle/check.ts `ProblemKind`), each on a copy of
 * a real built bundle tampered with by Python's tarfile or GNU tar — never by the product's own tar code.
 * Where the forger also rewrites SHA256SUMS and bundle.json to agree (tamper.py `fix_lists`), the test
 * asserts the exact problem list: the one check that still sees the tampering must report it, with its
 * kind and subject, and `verify` exits 1.
 */
let world: BundleWorld;
let cloud: string;
let edge: string;
/** An images archive holding cloudcore for linux/amd64 (the wrong architecture for these arm64 bundles). */
let amd64Images: string;

const CLOUDCORE = 'docker.io/kubeedge/cloudcore:v1.22.0';
/**
 * The forged-config case needs verify to read the ELF machine of each image's entrypoint (issue 14
 * item 6, engineer "platform", branch platform 9be4572, not on main when this was written): until that
 * check is merged the test is a todo (it runs and reports, without failing the suite). Remove the todo
 * once merged.
 */

before(async () => {
  for (const prog of ['python3', 'tar']) execFileSync('sh', ['-c', `command -v ${prog}`], { stdio: 'pipe' });
  world = await startBundleWorld();
  const b = await world.build(join(world.work, 'good'));
  cloud = b.cloud;
  edge = b.edge;
  amd64Images = join(world.work, 'cloudcore-amd64.tar');
  const r = await world.run(['images', '--arch', 'amd64', '--out', amd64Images, '--cache-dir', join(world.work, 'cache'), CLOUDCORE]);
  assert.equal(r.code, 0, r.err);
});

after(async () => {
  await world?.stop();
});

const tmp = (name: string) => join(world.work, name);

type Found = { kind: string; subject: string; message: string };

/** `verify --json` on `file`: asserts exit 1 and returns the problems. */
async function problems(file: string, extra: string[] = []): Promise<Found[]> {
  const io = captureIo();
  const code = await runCli(['verify', file, '--json', ...extra], io);
  const out = JSON.parse(io.outText()) as { ok: boolean; problems: Found[] };
  assert.equal(code, 1, `verify exit code for ${file}: ${io.outText()}`);
  assert.equal(out.ok, false);
  return out.problems;
}

const pairs = (ps: Found[]) => ps.map((p) => `${p.kind} ${p.subject}`).sort();

/** Exactly these problems (kind + subject), nothing else. */
async function exactly(file: string, want: string[], extra: string[] = []): Promise<Found[]> {
  const ps = await problems(file, extra);
  assert.deepEqual(pairs(ps), [...want].sort(), JSON.stringify(ps, null, 1));
  return ps;
}

test('the untampered bundles verify (exit 0), so every failure below is the tampering', async () => {
  for (const f of [cloud, edge]) {
    const io = captureIo();
    assert.equal(await runCli(['verify', f, '--json'], io), 0, io.outText());
  }
  // a copy rewritten by tarfile with nothing changed is still a good bundle (the reader takes pax)
  const copy = pyTamper(cloud, tmp('tarfile-copy.tar'), 'pass');
  const io = captureIo();
  assert.equal(await runCli(['verify', copy], io), 0, io.outText());
});

test('layout: a symlink entry appended by GNU tar is refused, naming the entry and its target', async () => {
  const dir = tmp('sym');
  await mkdir(join(dir, CLOUD, 'bin'), { recursive: true });
  await symlink('/usr/bin/evil', join(dir, CLOUD, 'bin', 'kubectl'));
  const bad = tmp('symlink.tar');
  execFileSync('cp', [cloud, bad]);
  gnuTar(['--append', '-f', bad, '-C', dir, `${CLOUD}/bin/kubectl`]);
  assert.match(gnuTar(['-tvf', bad]), /bin\/kubectl -> \/usr\/bin\/evil/);
  const [p] = await exactly(bad, [`layout ${CLOUD}/bin/kubectl (symlink → /usr/bin/evil)`]);
  assert.match(p!.message, /a bundle holds only regular files and directories/);
});

test('layout: a hardlink entry written by Python tarfile is refused', async () => {
  const bad = pyTamper(cloud, tmp('hardlink.tar'), `b.link('bin/keadm2', b.prefix + 'bin/keadm', 'hard')`);
  await exactly(bad, [`layout ${CLOUD}/bin/keadm2 (hardlink → ${CLOUD}/bin/keadm)`]);
});

test('layout: an entry outside the single top directory (GNU tar) is refused', async () => {
  const dir = tmp('outside');
  await mkdir(dir, { recursive: true });
  execFileSync('sh', ['-c', `echo hello > ${join(dir, 'README')}`]);
  const bad = tmp('outside.tar');
  execFileSync('cp', [edge, bad]);
  gnuTar(['--append', '-f', bad, '-C', dir, 'README']);
  await exactly(bad, [`layout ${bad}`, 'layout README']);
});

test('layout: entry names that leave the bundle directory (`..`, absolute), written by tarfile', async () => {
  const add = (name: string) => `ti = tarfile.TarInfo(${name}); d = b'x\\n'; ti.size = len(d); b.members.append([ti, d])`;
  const dotdot = pyTamper(edge, tmp('dotdot.tar'), add(`b.prefix + '../../tmp/evil'`));
  const ps = await exactly(dotdot, ['layout ../../tmp/evil', 'extra ../../tmp/evil']);
  assert.match(ps.find((p) => p.kind === 'layout')!.message, /unsafe entry \.\.\/\.\.\/tmp\/evil: its name leaves the bundle's directory/);
  const abs = pyTamper(edge, tmp('absolute.tar'), add(`'/etc/evil'`));
  await exactly(abs, ['layout /etc/evil (absolute name)', 'extra etc/evil']);
});

test('modified: install.sh made non-executable (tarfile), content untouched: its mode disagrees with bundle.json', async () => {
  const bad = pyTamper(cloud, tmp('chmod.tar'), `b._find('install.sh')[0].mode = 0o644`);
  assert.match(gnuTar(['-tvf', bad]), /-rw-r--r-- .*\/install\.sh\n/);
  const [p] = await exactly(bad, ['modified install.sh']);
  assert.equal(p!.message, 'modified: install.sh has mode 0644; bundle.json says 0755');
});

test('extra: a stray file appended by GNU tar, listed nowhere', async () => {
  const dir = tmp('stray');
  await mkdir(join(dir, CLOUD, 'bin'), { recursive: true });
  execFileSync('sh', ['-c', `printf '#!/bin/sh\\n' > ${join(dir, CLOUD, 'bin', 'backdoor')}`]);
  const bad = tmp('stray.tar');
  execFileSync('cp', [cloud, bad]);
  gnuTar(['--append', '-f', bad, '-C', dir, `${CLOUD}/bin/backdoor`]);
  const [p] = await exactly(bad, ['extra bin/backdoor']);
  assert.match(p!.message, /not in SHA256SUMS nor in bundle\.json/);
});

test('extra: an image added to images.tar (index.json and blobs), all file lists rewritten to match', async () => {
  const bad = pyTamper(
    cloud,
    tmp('extra-image.tar'),
    `
img = b.inner('images/images.tar')
other = Tar.bundle(ARGS[0]).inner('images/images.tar')
ref = 'docker.io/kubeedge/installation-package:v1.22.0'
for d in other.image_blobs(ref):
    img.put_blob(other.blob(d))
idx = img.json('index.json')
idx['manifests'].append(other.image(ref))
img.put('index.json', json.dumps(idx))
b.put('images/images.tar', img.tobytes())
fix_lists(b)
`,
    [edge],
  );
  const [p] = await exactly(bad, ['extra docker.io/kubeedge/installation-package:v1.22.0']);
  assert.match(p!.message, /is in images\/images\.tar but not in bundle\.json/);
});

test('extra: an unused blob in images.tar (right digest, used by no image), lists rewritten to match', async () => {
  const data = Buffer.from('nobody uses this blob\n'.repeat(50));
  const bad = pyTamper(
    edge,
    tmp('unused-blob.tar'),
    `
img = b.inner('images/images.tar')
img.put_blob(${JSON.stringify(data.toString())}.encode())
b.put('images/images.tar', img.tobytes())
fix_lists(b)
`,
  );
  const [p] = await exactly(bad, [`extra sha256:${sha256(data)}`]);
  assert.match(p!.message, /is not used by any image/);
});

test('inventory: bundle.json disagreeing with an image config (platform), SHA256SUMS rewritten to match', async () => {
  const bad = pyTamper(
    cloud,
    tmp('inv-platform.tar'),
    `
inv = b.json('bundle.json')
for li in inv['images']['list']:
    if li['ref'] == '${CLOUDCORE}':
        li['platform'] = 'linux/amd64'
b.put_json('bundle.json', inv)
fix_lists(b, relist_images=False)
`,
  );
  const [p] = await exactly(bad, [`inventory ${CLOUDCORE}`]);
  assert.match(p!.message, /bundle\.json says linux\/amd64, its config says linux\/arm64/);
});

for (const doc of ['oci-layout', 'index.json', 'manifest.json']) {
  test(`layout: ${doc} missing from images.tar (removed by tarfile, lists rewritten to match)`, async () => {
    const bad = pyTamper(
      edge,
      tmp(`no-${doc}.tar`),
      `
img = b.inner('images/images.tar')
img.remove('${doc}')
b.put('images/images.tar', img.tobytes())
fix_lists(b, relist_images=False)
`,
    );
    const ps = await problems(bad);
    const want = `layout images/images.tar:${doc}`;
    if (doc === 'index.json') {
      // no image is reachable: each listed image is missing and every blob is unused
      assert.ok(pairs(ps).includes(want), pairs(ps).join(', '));
      const inv = JSON.parse(gnuTar(['-xOf', edge, `${EDGE}/bundle.json`]));
      for (const li of inv.images.list) assert.ok(pairs(ps).includes(`missing ${li.ref}`), li.ref);
      assert.ok(ps.some((p) => p.kind === 'extra' && /^sha256:/.test(p.subject)));
    } else {
      assert.deepEqual(pairs(ps), [want]);
    }
  });
}

test('platform: a wrong-arch image (amd64 cloudcore) with index.json, manifest.json, bundle.json and SHA256SUMS all rewritten to match', async () => {
  const swap = `
img = b.inner('images/images.tar')
src = Tar(open(ARGS[0], 'rb').read())
ref = '${CLOUDCORE}'
new = src.image(ref)
for d in src.image_blobs(ref):
    img.put_blob(src.blob(d))
if ARGS[1] == 'lie':
    new['platform'] = {'architecture': 'arm64', 'os': 'linux'}
idx = img.json('index.json')
idx['manifests'] = [new if x['annotations']['io.containerd.image.name'] == ref else x for x in idx['manifests']]
img.put('index.json', json.dumps(idx))
m = src.blob_json(new['digest'])
dm = img.json('manifest.json')
for e in dm:
    if ref in e['RepoTags']:
        e['Config'] = 'blobs/sha256/' + m['config']['digest'][7:]
        e['Layers'] = ['blobs/sha256/' + l['digest'][7:] for l in m['layers']]
img.put('manifest.json', json.dumps(dm))
img.drop_unused_blobs()
b.put('images/images.tar', img.tobytes())
fix_lists(b)
if ARGS[1] == 'lie':
    inv = b.json('bundle.json')
    for li in inv['images']['list']:
        if li['ref'] == ref:
            li['platform'] = 'linux/arm64'
    b.put_json('bundle.json', inv)
    fix_lists(b, relist_images=False)
`;
  // The lists tell the truth about the content (bundle.json says linux/amd64 for it, as its config does):
  // only the platform check against the bundle's platform sees it.
  const bad = pyTamper(cloud, tmp('wrong-arch.tar'), swap, [amd64Images, 'truth']);
  const inv = JSON.parse(gnuTar(['-xOf', bad, `${CLOUD}/bundle.json`]));
  assert.equal(inv.images.list.find((l: { ref: string }) => l.ref === CLOUDCORE).platform, 'linux/amd64', 'the forger relisted it');
  // (A check of the ELF machine of the image's entrypoint may add platform problems naming the image.)
  const onlyCloudcore = (ps: Found[], want: string[]) => {
    for (const w of want) assert.ok(pairs(ps).includes(w), `${w} in ${pairs(ps).join(', ')}`);
    for (const p of ps) assert.ok(want.includes(`${p.kind} ${p.subject}`) || (p.kind === 'platform' && p.subject.includes('cloudcore')), `unexpected ${p.kind} ${p.subject}`);
  };
  const ps = await problems(bad);
  onlyCloudcore(ps, [`platform ${CLOUDCORE}`]);
  assert.ok(ps.some((p) => /image docker\.io\/kubeedge\/cloudcore:v1\.22\.0 is linux\/amd64 \(config [a-f0-9]{12}\), the bundle is for linux\/arm64/.test(p.message)), JSON.stringify(ps));
  // The lists lie (index.json and bundle.json say arm64): the image config still gives it away.
  const liar = pyTamper(cloud, tmp('wrong-arch-lie.tar'), swap, [amd64Images, 'lie']);
  onlyCloudcore(await problems(liar), [`platform ${CLOUDCORE}`, `inventory ${CLOUDCORE}`]);
});

test('platform: a wrong-arch image whose config too was forged to say arm64 (every digest and list rewritten) is caught by its entrypoint ELF', async () => {
  const bad = pyTamper(
    cloud,
    tmp('forged-config.tar'),
    `
img = b.inner('images/images.tar')
src = Tar(open(ARGS[0], 'rb').read())
ref = '${CLOUDCORE}'
desc = src.image(ref)
m = src.blob_json(desc['digest'])
cfg = src.blob_json(m['config']['digest'])
cfg['architecture'] = 'arm64'
cfg_bytes = json.dumps(cfg).encode()
m['config'] = dict(m['config'], digest=img.put_blob(cfg_bytes), size=len(cfg_bytes))
for l in m['layers']:
    img.put_blob(src.blob(l['digest']))
m_bytes = json.dumps(m).encode()
new = dict(desc, digest=img.put_blob(m_bytes), size=len(m_bytes), platform={'architecture': 'arm64', 'os': 'linux'})
idx = img.json('index.json')
idx['manifests'] = [new if x['annotations']['io.containerd.image.name'] == ref else x for x in idx['manifests']]
img.put('index.json', json.dumps(idx))
dm = img.json('manifest.json')
for e in dm:
    if ref in e['RepoTags']:
        e['Config'] = 'blobs/sha256/' + m['config']['digest'][7:]
        e['Layers'] = ['blobs/sha256/' + l['digest'][7:] for l in m['layers']]
img.put('manifest.json', json.dumps(dm))
img.drop_unused_blobs()
b.put('images/images.tar', img.tobytes())
fix_lists(b)
`,
    [amd64Images],
  );
  const inv = JSON.parse(gnuTar(['-xOf', bad, `${CLOUD}/bundle.json`]));
  assert.equal(inv.images.list.find((l: { ref: string }) => l.ref === CLOUDCORE).platform, 'linux/arm64', 'every list says arm64');
  const ps = await problems(bad);
  assert.ok(ps.length > 0 && ps.every((p) => p.kind === 'platform' && p.subject.includes('cloudcore')), JSON.stringify(ps));
  assert.ok(ps.some((p) => /x86-64|amd64/.test(p.message)), JSON.stringify(ps));
});

test('platform: an amd64 ELF binary in an arm64 bundle (lists rewritten), and a bundle checked with another --arch', async () => {
  const bad = pyTamper(
    cloud,
    tmp('amd64-k3s.tar'),
    `
import struct
head = bytearray(64)
head[0:4] = b'\\x7fELF'; head[4] = 2; head[5] = 1; head[6] = 1
struct.pack_into('<HH', head, 16, 2, 0x3e)  # ET_EXEC, EM_X86_64
b.put('bin/k3s', bytes(head) + b'k3s amd64\\n' * 100)
fix_lists(b)
`,
  );
  const [p] = await exactly(bad, ['platform bin/k3s']);
  assert.match(p!.message, /bin\/k3s is an ELF binary for amd64, the bundle is for linux\/arm64/);
  const ps = await problems(edge, ['--arch', 'amd64']);
  assert.ok(pairs(ps).includes('platform bundle.json'), pairs(ps).join(', '));
});

test('truncated: the tarball cut in half (by Python) is named as truncated', async () => {
  const bad = pyTamper(cloud, tmp('cut.tar'), `data = open(SRC, 'rb').read()\nopen(DEST, 'wb').write(data[:len(data) // 2])\nSAVE = False`);
  const ps = await problems(bad);
  const first = ps.find((p) => p.subject === bad);
  assert.equal(first?.kind, 'truncated', JSON.stringify(ps));
  assert.match(first!.message, /the tarball was not copied completely/);
});

test('modified: one byte of bin/keadm flipped by tarfile', async () => {
  const bad = pyTamper(edge, tmp('modified.tar'), `d = bytearray(b.get('bin/keadm'))\nd[3] ^= 1\nb.put('bin/keadm', bytes(d))`);
  const [p] = await exactly(bad, ['modified bin/keadm']);
  assert.match(p!.message, /SHA256SUMS says [a-f0-9]{64}; bundle\.json says [a-f0-9]{64}/);
});

test('missing: verify.sh removed by tarfile', async () => {
  const bad = pyTamper(edge, tmp('missing.tar'), `b.remove('verify.sh')`);
  await exactly(bad, ['missing verify.sh']);
});

test('required: a file the cloud install.sh needs, removed and struck from SHA256SUMS and bundle.json', async () => {
  const bad = pyTamper(
    cloud,
    tmp('required.tar'),
    `
p = 'manifests/metrics-server.yaml'
b.remove(p)
inv = b.json('bundle.json')
inv['files'] = [f for f in inv['files'] if f['path'] != p]
b.put_json('bundle.json', inv)
fix_lists(b, relist_images=False)
`,
  );
  const [p] = await exactly(bad, ['required manifests/metrics-server.yaml']);
  assert.match(p!.message, /needed by the cloud install\.sh/);
});

test('blob: a layer blob with a flipped byte inside images.tar, lists rewritten to match', async () => {
  const bad = pyTamper(
    cloud,
    tmp('bad-blob.tar'),
    `
img = b.inner('images/images.tar')
layer = img.blob_json(img.image('${CLOUDCORE}')['digest'])['layers'][-1]['digest']
d = bytearray(img.blob(layer)); d[100] ^= 0xff
img.put('blobs/sha256/' + layer[7:], bytes(d))
b.put('images/images.tar', img.tobytes())
fix_lists(b)
`,
  );
  const ps = await problems(bad);
  assert.equal(ps.length, 1, JSON.stringify(ps));
  assert.equal(ps[0]!.kind, 'blob');
  assert.match(ps[0]!.subject, /^sha256:[a-f0-9]{64}$/);
  assert.match(ps[0]!.message, new RegExp(`corrupted blob: images/images\\.tar blobs/sha256/${ps[0]!.subject.slice(7)} hashes to sha256:[a-f0-9]{64} \\(used by docker\\.io/kubeedge/cloudcore:v1\\.22\\.0\\)`));
});

test('blob: a layer blob an image references, removed from images.tar by tarfile (lists rewritten to match)', async () => {
  const bad = pyTamper(
    edge,
    tmp('no-layer.tar'),
    `
img = b.inner('images/images.tar')
ref = 'docker.io/kubeedge/installation-package:v1.22.0'
layer = img.blob_json(img.image(ref)['digest'])['layers'][-1]['digest']
img.remove('blobs/sha256/' + layer[7:])
b.put('images/images.tar', img.tobytes())
fix_lists(b)
open(DEST + '.digest', 'w').write(layer)
`,
  );
  const layer = await readFile(`${bad}.digest`, 'utf8');
  const ps = await exactly(bad, [`blob ${layer}`, `blob ${layer}`]);
  assert.deepEqual(ps.map((p) => p.message).sort(), [
    `missing blob: blobs/sha256/${layer.slice(7)} (manifest.json, docker.io/kubeedge/installation-package:v1.22.0) is not in images/images.tar`,
    `missing blob: layer ${layer} of image docker.io/kubeedge/installation-package:v1.22.0 is not in images/images.tar`,
  ]);
});

test('corrupt: a SHA256SUMS line that is not "<sha256>  <path>", and a bundle.json that is not JSON', async () => {
  const bad = pyTamper(edge, tmp('corrupt-sums.tar'), `b.put('SHA256SUMS', b.get('SHA256SUMS') + b'not a checksum line\\n')`);
  await exactly(bad, ['corrupt SHA256SUMS']);
  const bad2 = pyTamper(edge, tmp('corrupt-inv.tar'), `b.put('bundle.json', b.get('bundle.json')[:-10])\nfix_sums = [l for l in b.get('SHA256SUMS').decode().splitlines() if not l.endswith('  bundle.json')]\nb.put('SHA256SUMS', '\\n'.join(fix_sums + [sha256(b.get('bundle.json')) + '  bundle.json']) + '\\n')`);
  const ps = await problems(bad2);
  assert.ok(pairs(ps).includes('corrupt bundle.json'), pairs(ps).join(', '));
});

test('the tamper helper itself: a tarfile copy with lists rewritten but nothing else changed still verifies', async () => {
  const same = pyTamper(cloud, tmp('relisted.tar'), `b.put('images/images.tar', b.inner('images/images.tar').tobytes())\nfix_lists(b)`);
  const io = captureIo();
  assert.equal(await runCli(['verify', same], io), 0, io.outText());
  assert.notEqual(sha256(await readFile(same)), sha256(await readFile(cloud)), 'the copy was rewritten (other bytes)');
});
