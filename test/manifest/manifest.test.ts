import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadManifest, parseManifestText } from '../../src/manifest/load.js';
import { normalizeImageRef } from '../../src/manifest/image-ref.js';
import { UserError } from '../../src/errors.js';
import { DEFAULT_MANIFEST } from '../../src/version.js';
import { runCli } from '../../src/cli.js';
import { captureIo } from '../harness/io.js';

function errorOf(fn: () => unknown): UserError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof UserError, `expected UserError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected an error');
}

test('the shipped manifest validates and pins every binary', async () => {
  const lm = await loadManifest(DEFAULT_MANIFEST);
  assert.equal(lm.manifest.components.kubeedge.version, 'v1.22.2');
  for (const [name, c] of Object.entries(lm.manifest.components)) {
    for (const b of c.binaries ?? []) assert.ok(b.sha256, `${name}/${b.name} has a checksum source`);
  }
});

test('image references are normalised', () => {
  assert.equal(normalizeImageRef('nginx'), 'docker.io/library/nginx:latest');
  assert.equal(normalizeImageRef('kubeedge/cloudcore:v1.22.0'), 'docker.io/kubeedge/cloudcore:v1.22.0');
  assert.equal(normalizeImageRef('registry.k8s.io/pause:3.9'), 'registry.k8s.io/pause:3.9');
  assert.equal(normalizeImageRef('127.0.0.1:5000/a/b'), '127.0.0.1:5000/a/b:latest');
  assert.equal(normalizeImageRef('index.docker.io/library/busybox:1.36'), 'docker.io/library/busybox:1.36');
  const d = `sha256:${'a'.repeat(64)}`;
  assert.equal(normalizeImageRef(`busybox@${d}`), `docker.io/library/busybox@${d}`);
});

test('a typo in a key is an error naming file:line:column and the key path', async () => {
  const text = (await readFile(DEFAULT_MANIFEST, 'utf8')).replace('    version: v1.17.0', '    verison: v1.17.0');
  const e = errorOf(() => parseManifestText(text, 'versions.yaml'));
  const line = text.split('\n').findIndex((l) => l.includes('verison')) + 1;
  assert.match(e.message, new RegExp(`^versions\\.yaml:${line}:5: components\\.edgemesh\\.verison: unknown key 'verison'`, 'm'));
  // The missing `version` is reported too, at the component.
  assert.match(e.message, /components\.edgemesh\.version: missing required key/);
  assert.equal(e.exitCode, 2);
});

test('wrong types, bad image references and bad digests are reported with positions', () => {
  const text = [
    'schemaVersion: 1',
    'sourceDateEpoch: 1700000000',
    'components:',
    '  k3s: {version: v1.31.14+k3s1}',
    '  kubeedge:',
    '    version: v1.22.0',
    '    images:',
    '      cloud:',
    '        - ref: Kubeedge/CloudCore:v1.22.0',
    '  edgemesh: {version: 1.17}',
    '  metricsServer:',
    '    version: v0.8.0',
    '    binaries:',
    '      - name: x',
    '        sides: [cloud]',
    '        url: ftp://example/x',
    '        dest: bin/x',
    '        sha256: {pinned: {arm64: abc}}',
  ].join('\n');
  const e = errorOf(() => parseManifestText(text, 'm.yaml'));
  assert.match(e.message, /^m\.yaml:9:16: components\.kubeedge\.images\.cloud\[0\]\.ref: an image reference: .*'Kubeedge'/m);
  assert.match(e.message, /^m\.yaml:10:23: components\.edgemesh\.version: expected string, got number 1\.17/m);
  assert.match(e.message, /^m\.yaml:16:14: components\.metricsServer\.binaries\[0\]\.url: an http:\/\/ or https:\/\/ URL template/m);
  assert.match(e.message, /^m\.yaml:18:34: components\.metricsServer\.binaries\[0\]\.sha256\.pinned\.arm64: a SHA-256 digest/m);
});

test('YAML syntax errors carry positions', () => {
  const e = errorOf(() => parseManifestText('schemaVersion: 1\ncomponents:\n  k3s: [unclosed\n', 'bad.yaml'));
  assert.match(e.message, /^bad\.yaml:\d+:\d+: YAML syntax/m);
});

test('CLI: a typo in the manifest prints versions.yaml:LINE:COL and exits 2', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-manifest-'));
  const file = join(dir, 'versions.yaml');
  await writeFile(file, (await readFile(DEFAULT_MANIFEST, 'utf8')).replace('sourceDateEpoch:', 'sourceDateEpok:'));
  const io = captureIo();
  const code = await runCli(['plan', '--arch', 'arm64', '--manifest', file], io);
  assert.equal(code, 2);
  assert.match(io.errText(), /versions\.yaml:\d+:1: sourceDateEpok: unknown key/);
  assert.doesNotMatch(io.errText(), /at .*\.ts:\d+/, 'no stack trace without --verbose');
});

test('CLI: missing manifest file is a clear input error', async () => {
  const io = captureIo();
  const code = await runCli(['plan', '--arch', 'arm64', '--manifest', '/nonexistent/versions.yaml'], io);
  assert.equal(code, 2);
  assert.match(io.errText(), /\/nonexistent\/versions\.yaml: cannot read the versions manifest \(ENOENT\)/);
});
