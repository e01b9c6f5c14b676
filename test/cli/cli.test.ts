import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, makeProgram } from '../../src/cli.js';
import { chooseRenderer } from '../../src/progress/ui.js';
import { parseArchList } from '../../src/platform.js';
import { captureIo } from '../harness/io.js';

test('--help of every command has examples, and exits 0', async () => {
  const names = makeProgram(captureIo()).commands.map((c) => c.name()).filter((n) => n !== 'help');
  assert.ok(names.includes('build') && names.includes('plan') && names.includes('render') && names.includes('images'), names.join(','));
  for (const args of [['--help'], ...names.map((n) => [n, '--help'])]) {
    const io = captureIo();
    assert.equal(await runCli(args, io), 0, args.join(' '));
    assert.match(io.outText(), /Examples:\n\s+\$ (kubeprepare|bundle) /, `${args.join(' ')} shows examples`);
  }
});

test('usage errors exit 2: unknown command, unknown option, bad choice', async () => {
  for (const args of [['frobnicate'], ['plan', '--arch', 'arm64', '--bogus'], ['build', '--arch', 'arm64', '--compression', 'lz4'], ['build', '--arch', 'arm64', '--only', 'both']]) {
    const io = captureIo();
    assert.equal(await runCli(args, io), 2, args.join(' '));
    assert.ok(io.errText().length > 0, 'says why');
  }
});

test('--version prints the package version', async () => {
  const io = captureIo();
  assert.equal(await runCli(['--version'], io), 0);
  assert.match(io.outText(), /^\d+\.\d+\.\d+/);
});

test('progress renderer: listr2 default on a TTY, plain lines on CI or a pipe, nothing with --quiet', () => {
  assert.equal(chooseRenderer({ isTTY: true, env: {} }), 'default');
  assert.equal(chooseRenderer({ isTTY: true, env: { CI: 'true' } }), 'plain');
  assert.equal(chooseRenderer({ isTTY: false, env: {} }), 'plain');
  assert.equal(chooseRenderer({ quiet: true, isTTY: true, env: {} }), 'silent');
});

test('--arch parsing: comma lists, aliases, arm = arm/v7, duplicates dropped, never another arch', () => {
  assert.deepEqual(parseArchList('arm64, amd64,arm64'), [
    { os: 'linux', architecture: 'arm64' },
    { os: 'linux', architecture: 'amd64' },
  ]);
  assert.deepEqual(parseArchList('arm'), [{ os: 'linux', architecture: 'arm', variant: 'v7' }]);
  assert.deepEqual(parseArchList('linux/arm/v6'), [{ os: 'linux', architecture: 'arm', variant: 'v6' }]);
  assert.throws(() => parseArchList('riscv64'), /unknown architecture 'riscv64'/);
  assert.throws(() => parseArchList(' , '), /--arch is empty/);
});

test('plan --json: one object per bundle with side, arch, images[].ref and binaries[].url', async () => {
  const io = captureIo();
  assert.equal(await runCli(['plan', '--arch', 'arm64,arm', '--json'], io), 0, io.errText());
  const p = JSON.parse(io.outText());
  assert.equal(p.bundles.length, 4);
  const edgeArm = p.bundles.find((b: { side: string; arch: string }) => b.side === 'edge' && b.arch === 'arm');
  assert.ok(edgeArm.images.every((i: { ref: string }) => /^[a-z0-9.-]+(:\d+)?\/.+:.+$/.test(i.ref)));
  assert.ok(edgeArm.binaries.some((b: { url: string }) => b.url.endsWith('keadm-v1.22.2-linux-arm.tar.gz')));
  // containerd publishes no linux/arm build: the plan says so instead of bundling another arch.
  assert.ok(!edgeArm.binaries.some((b: { name: string }) => b.name === 'containerd'));
  assert.ok(edgeArm.notes.some((n: string) => /containerd .*no linux\/arm build/.test(n)));
  const cloudArm64 = p.bundles.find((b: { side: string; arch: string }) => b.side === 'cloud' && b.arch === 'arm64');
  assert.ok(cloudArm64.binaries.some((b: { url: string }) => b.url.endsWith('/k3s-arm64')));
  assert.match(cloudArm64.output, /kubeprepare-cloud-v1\.22\.2-linux-arm64\.tar$/);
});

test('per-image settings: pull: never without the docker engine is an input error (exit 2); engine: docker per image is accepted', async () => {
  const { mkdtemp, writeFile, readFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { DEFAULT_MANIFEST } = await import('../../src/version.js');
  const dir = await mkdtemp(join(tmpdir(), 'kp-settings-'));
  const base = await readFile(DEFAULT_MANIFEST, 'utf8');
  const admissionViaDocker = base.replace('- { ref: docker.io/kubeedge/admission:v1.22.2, role: admission }', '- { ref: docker.io/kubeedge/admission:v1.22.2, role: admission, engine: docker }');
  assert.notEqual(admissionViaDocker, base);
  const bad = join(dir, 'bad.yaml');
  await writeFile(bad, admissionViaDocker.replace('- { ref: docker.io/kubeedge/pause:3.6, role: pause }', '- { ref: docker.io/kubeedge/pause:3.6, role: pause, pull: never }'));
  const io = captureIo();
  assert.equal(await runCli(['build', '--arch', 'arm64', '--dry-run', '--manifest', bad], io), 2);
  assert.match(io.errText(), /bad\.yaml: components\.\S+: image docker\.io\/kubeedge\/pause:3\.6 has 'pull: never' .*needs the docker engine: add 'engine: docker' to it or build with --engine docker/);
  assert.doesNotMatch(io.errText(), /admission/);
  // The same pull: never image passes once it names the docker engine; so does it under --engine docker.
  const good = join(dir, 'good.yaml');
  await writeFile(good, admissionViaDocker.replace('- { ref: docker.io/kubeedge/pause:3.6, role: pause }', '- { ref: docker.io/kubeedge/pause:3.6, role: pause, pull: never, engine: docker }'));
  const io2 = captureIo();
  assert.equal(await runCli(['build', '--arch', 'arm64', '--dry-run', '--manifest', good], io2), 0, io2.errText());
  assert.match(io2.outText(), /image +docker\.io\/kubeedge\/pause:3\.6 +\S+, engine docker, pull never/);
  const io4 = captureIo();
  assert.equal(await runCli(['plan', '--arch', 'arm64', '--json', '--manifest', good], io4), 0, io4.errText());
  const planned = (JSON.parse(io4.outText()) as { bundles: { images: { ref: string; engine: string | null; pull: string | null }[] }[] }).bundles.flatMap((b) => b.images);
  assert.ok(planned.some((i) => i.ref === 'docker.io/kubeedge/admission:v1.22.2' && i.engine === 'docker' && i.pull === null));
  assert.ok(planned.some((i) => i.ref === 'docker.io/kubeedge/pause:3.6' && i.engine === 'docker' && i.pull === 'never'));
  assert.ok(planned.some((i) => i.ref === 'docker.io/kubeedge/cloudcore:v1.22.2' && i.engine === null));
  const io3 = captureIo();
  assert.equal(await runCli(['build', '--arch', 'arm64', '--dry-run', '--engine', 'docker', '--manifest', bad], io3), 0, io3.errText());
});

test('the same image listed twice with other engine/pull settings is an input error naming both places', async () => {
  const { mkdtemp, writeFile, readFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { DEFAULT_MANIFEST } = await import('../../src/version.js');
  const dir = await mkdtemp(join(tmpdir(), 'kp-twice-'));
  const base = await readFile(DEFAULT_MANIFEST, 'utf8');
  const entry = '- { ref: docker.io/kubeedge/pause:3.6, role: pause }';
  assert.ok(base.includes(entry));
  const at = base.indexOf(entry);
  const indent = base.slice(base.lastIndexOf('\n', at) + 1, at);
  // a second spelling of the same image, right below the first, for the docker engine
  const twice = join(dir, 'twice.yaml');
  await writeFile(twice, base.replace(entry, `${entry}\n${indent}- { ref: kubeedge/pause:3.6, engine: docker }`));
  const io = captureIo();
  assert.equal(await runCli(['plan', '--arch', 'arm64', '--manifest', twice], io), 2);
  assert.match(io.errText(), /twice\.yaml: components\.\w+\.images\.\w+: docker\.io\/kubeedge\/pause:3\.6 is also listed by components\.\w+ with another engine\/pull \(engine \(the build's\), pull always vs engine docker, pull always\)/);
  // listed again with the same settings it is simply bundled once
  const same = join(dir, 'same.yaml');
  await writeFile(same, base.replace(entry, `${entry}\n${indent}- { ref: kubeedge/pause:3.6 }`));
  const io2 = captureIo();
  assert.equal(await runCli(['plan', '--arch', 'arm64', '--json', '--manifest', same], io2), 0, io2.errText());
  for (const b of (JSON.parse(io2.outText()) as { bundles: { images: { ref: string }[] }[] }).bundles) {
    assert.ok(b.images.filter((i) => i.ref === 'docker.io/kubeedge/pause:3.6').length <= 1);
  }
});

test('--keep-images without any image going through the docker engine is an input error', async () => {
  const io = captureIo();
  assert.equal(await runCli(['build', '--arch', 'arm64', '--dry-run', '--keep-images'], io), 2);
  assert.match(io.errText(), /--keep-images applies to the docker engine/);
  const io2 = captureIo();
  assert.equal(await runCli(['build', '--arch', 'arm64', '--dry-run', '--keep-images', '--engine', 'docker'], io2), 0, io2.errText());
});

test('render: the cloud installer enables the chart mosquitto because the edge bundle ships its image', async () => {
  const { mkdtemp, readFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const out = await mkdtemp(join(tmpdir(), 'kp-render-'));
  const io = captureIo();
  assert.equal(await runCli(['render', '--arch', 'arm64', '--only', 'cloud', '--out', out], io), 0, io.errText());
  const install = await readFile(join(out, 'kubeprepare-cloud-v1.22.2-linux-arm64', 'install.sh'), 'utf8');
  assert.match(install, /^readonly MOSQUITTO_ENABLED=true$/m);
  const ms = await readFile(join(out, 'kubeprepare-cloud-v1.22.2-linux-arm64', 'manifests', 'metrics-server.yaml'), 'utf8');
  assert.match(ms, /image: registry\.k8s\.io\/metrics-server\/metrics-server:v0\.8\.1/);
  assert.match(ms, /imagePullPolicy: Never/);
});

test('templates: a missing variable is an error naming the template, its position and the variable; shell quoting helper', async () => {
  const { createRenderer, renderOne, shellQuote } = await import('../../src/render/render.js');
  const hb = createRenderer();
  assert.throws(
    () => renderOne(hb, 'cloud/install.sh', '#!/bin/sh\necho {{versions.k3sx}}\n', { versions: { k3s: 'v1' } }),
    (e: unknown) => e instanceof Error && /^scripts-templates\/cloud\/install\.sh:2:\d+: variable 'k3sx' is not defined$/.test(e.message),
  );
  assert.equal(renderOne(hb, 't', 'X={{sq v}}', { v: "it's a <test> & $HOME" }), `X='it'\\''s a <test> & $HOME'`);
  assert.equal(shellQuote('plain-1.2_3/x:y'), 'plain-1.2_3/x:y');
  assert.equal(shellQuote(''), "''");
});
