import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fetchBinary, parseChecksumFile } from '../../src/binaries/fetch.js';
import type { PlannedBinary } from '../../src/plan/plan.js';
import { UserError } from '../../src/errors.js';
import { startFileServer, type FileServer } from '../harness/file-server.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sha512 = (b: Buffer) => createHash('sha512').update(b).digest('hex');

let server: FileServer;
const big = Buffer.alloc(3 * 1024 * 1024);
for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
let keadmTgz: Buffer;

before(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-fetch-src-'));
  await mkdir(join(dir, 'keadm-v1.22.0-linux-arm64/keadm'), { recursive: true });
  await writeFile(join(dir, 'keadm-v1.22.0-linux-arm64/keadm/keadm'), '#!/bin/sh\necho keadm\n');
  await writeFile(join(dir, 'keadm-v1.22.0-linux-arm64/version'), 'v1.22.0\n');
  execFileSync('tar', ['czf', join(dir, 'k.tgz'), '-C', dir, 'keadm-v1.22.0-linux-arm64']);
  keadmTgz = await readFile(join(dir, 'k.tgz'));
  server = await startFileServer({
    '/rel/k3s-arm64': big,
    '/rel/sha256sum-arm64.txt': `${sha256(Buffer.from('other'))}  k3s-airgap-images-arm64.tar.zst\n${sha256(big)}  k3s-arm64\n`,
    '/ke/keadm.tar.gz': keadmTgz,
    '/ke/keadm.tar.gz.txt': `${sha512(keadmTgz)}\n`,
    '/bad/file': 'tampered content',
  });
});
after(() => server?.stop());

function binary(over: Partial<PlannedBinary> = {}): PlannedBinary {
  return {
    name: 'k3s',
    component: 'k3s',
    version: 'v1.31.14+k3s1',
    url: `${server.url}/rel/k3s-arm64`,
    upstreamUrl: 'https://github.com/k3s-io/k3s/releases/download/v1.31.14+k3s1/k3s-arm64',
    dest: 'bin/k3s',
    mode: 0o755,
    checksum: { kind: 'file', url: `${server.url}/rel/sha256sum-arm64.txt`, upstreamUrl: 'https://example.invalid/sha256sum-arm64.txt', entry: 'k3s-arm64', algorithm: 'sha256' },
    ...over,
  };
}

test('downloads, verifies against a sha256sum file, caches; a second fetch makes no request', async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'kp-cache-'));
  const n0 = server.count();
  const a = await fetchBinary(binary(), { cacheDir });
  assert.equal(a.sha256, sha256(big));
  assert.equal(a.cached, false);
  assert.deepEqual(await readFile(a.file), big);
  assert.ok(a.file.startsWith(join(cacheDir, 'blobs', 'sha256')));
  const n1 = server.count();
  const b = await fetchBinary(binary(), { cacheDir });
  assert.equal(b.cached, true);
  assert.equal(server.count(), n1, 'no request on the second fetch');
  assert.equal(n1 - n0, 2, 'one checksum file + one download');
});

test('two fetches of the same binary at once in one process (bundles of one build): one download, both get it', async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'kp-cache-'));
  const n0 = server.count();
  const [a, b] = await Promise.all([fetchBinary(binary(), { cacheDir }), fetchBinary(binary(), { cacheDir })]);
  assert.equal(a.sha256, sha256(big));
  assert.equal(b.sha256, sha256(big));
  assert.deepEqual([a.cached, b.cached].sort(), [false, true], 'one downloaded it, the other found it in the cache');
  // Two checksum-file reads (each fetch checks its own) and one download.
  assert.equal(server.count() - n0, 3);
  assert.deepEqual(await readdir(join(cacheDir, 'partial')), [], 'no lock or partial file left');
});

test('SHA-512 bare-digest checksum files (KubeEdge) and extracting one member', async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'kp-cache-'));
  const f = await fetchBinary(
    binary({
      name: 'keadm',
      url: `${server.url}/ke/keadm.tar.gz`,
      upstreamUrl: 'https://github.com/kubeedge/kubeedge/releases/download/v1.22.0/keadm-v1.22.0-linux-arm64.tar.gz',
      extract: 'keadm-v1.22.0-linux-arm64/keadm/keadm',
      checksum: { kind: 'file', url: `${server.url}/ke/keadm.tar.gz.txt`, upstreamUrl: 'https://example.invalid/ke.txt', entry: 'keadm-v1.22.0-linux-arm64.tar.gz', algorithm: 'sha512' },
    }),
    { cacheDir },
  );
  assert.equal(await readFile(f.file, 'utf8'), '#!/bin/sh\necho keadm\n');
  assert.equal(f.downloadSha256, sha256(keadmTgz));
  assert.equal(f.sha256, sha256(Buffer.from('#!/bin/sh\necho keadm\n')));
});

test('a missing member names the archive and lists what it has', async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'kp-cache-'));
  await assert.rejects(
    fetchBinary(binary({ url: `${server.url}/ke/keadm.tar.gz`, extract: 'nope/keadm', checksum: { kind: 'pinned', algorithm: 'sha256', digest: sha256(keadmTgz) } }), { cacheDir }),
    (e: unknown) => e instanceof UserError && e.code === 'manifest' && /has no member 'nope\/keadm'/.test(e.message) && /keadm-v1\.22\.0-linux-arm64\/version/.test(e.hint ?? ''),
  );
});

test('a digest mismatch names the URL and both digests, and caches nothing', async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'kp-cache-'));
  const want = sha256(Buffer.from('what the manifest pins'));
  const got = sha256(Buffer.from('tampered content'));
  await assert.rejects(
    fetchBinary(binary({ url: `${server.url}/bad/file`, checksum: { kind: 'pinned', algorithm: 'sha256', digest: want } }), { cacheDir }),
    (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.equal(e.code, 'digest-mismatch');
      assert.equal(e.exitCode, 1);
      assert.match(e.message, new RegExp(`sha256 mismatch for ${server.url}/bad/file: expected ${want}, got ${got}`));
      return true;
    },
  );
  const blobs = await readdir(join(cacheDir, 'blobs', 'sha256')).catch(() => []);
  assert.deepEqual(blobs, []);
  assert.deepEqual((await readdir(join(cacheDir, 'partial'))).filter((f) => f.endsWith('.partial')), []);
});

test('a dropped connection resumes with Range and does not refetch what arrived', async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'kp-cache-'));
  server.dropAfter('/rel/k3s-arm64', 1024 * 1024);
  const before = server.requests.length;
  const f = await fetchBinary(binary(), { cacheDir });
  assert.equal(f.sha256, sha256(big));
  const gets = server.requests.slice(before).filter((r) => r.path === '/rel/k3s-arm64');
  assert.equal(gets.length, 2);
  assert.equal(gets[0]?.range, undefined);
  assert.match(gets[1]?.range ?? '', /^bytes=\d+-$/);
  assert.ok(Number(/\d+/.exec(gets[1]?.range ?? '')?.[0]) >= 512 * 1024, 'resumed past what arrived');
});

test('a server without Range support restarts the download and still verifies', async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'kp-cache-'));
  server.noRange = true;
  try {
    server.dropAfter('/rel/k3s-arm64', 512 * 1024);
    const f = await fetchBinary(binary(), { cacheDir });
    assert.equal(f.sha256, sha256(big));
  } finally {
    server.noRange = false;
  }
});

test('5xx and 429 are retried; 404 is a clear error', async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'kp-cache-'));
  server.failNext('/rel/k3s-arm64', 503, 1);
  server.failNext('/rel/sha256sum-arm64.txt', 429, 1);
  const f = await fetchBinary(binary(), { cacheDir });
  assert.equal(f.sha256, sha256(big));
  await assert.rejects(
    fetchBinary(binary({ url: `${server.url}/rel/missing`, upstreamUrl: 'https://example.invalid/missing', checksum: { kind: 'pinned', algorithm: 'sha256', digest: sha256(big) } }), { cacheDir }),
    /answered HTTP 404/,
  );
});

test('checksum file parsing', () => {
  const h = 'a'.repeat(64);
  assert.equal(parseChecksumFile(`${h}  k3s\n${'b'.repeat(64)}  k3s-arm64\n`, 'k3s-arm64', 'sha256', 'u'), 'b'.repeat(64));
  assert.equal(parseChecksumFile(`${h} *dir/runc.arm64\n`, 'runc.arm64', 'sha256', 'u'), h);
  assert.equal(parseChecksumFile(`${'c'.repeat(128)}\n`, 'x.tar.gz', 'sha512', 'u'), 'c'.repeat(128));
  assert.throws(() => parseChecksumFile(`${h}  other\n`, 'k3s', 'sha256', 'http://x/sums'), /http:\/\/x\/sums has no sha256 entry for 'k3s'/);
});
