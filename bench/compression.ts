/**
 * Measures the bundle compression choices (`--compression none|gzip|zstd`) on bundle-like content, with
 * the same compressor code the build uses (src/archive/compress.ts):
 *   - the image blobs of the reference fixture's cloud arm64 set (already gzip-compressed layers, as
 *     registries serve them), from ../shared/bench/fixtures.py
 *   - real executables standing in for bin/ (k3s, keadm: large Go binaries compress well)
 * and prints, per choice, time, size and the size saved relative to the uncompressed tar.
 *
 *   node --import tsx bench/compression.ts [--scale 0.1]
 */
import { spawnSync } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { finished, pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { TarWriter } from '../src/archive/tar-writer.js';
import { createCompressor } from '../src/archive/compress.js';
import type { Compression } from '../src/plan/plan.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const shared = resolve(root, '..', 'shared', 'bench', 'fixtures.py');
const scaleIdx = process.argv.indexOf('--scale');
const scale = Number(scaleIdx >= 0 ? process.argv[scaleIdx + 1] : (process.env.KP_BENCH_SCALE ?? '0.1'));

async function fixtureBlobs(): Promise<string[]> {
  if (!existsSync(shared)) throw new Error(`reference fixture builder not found at ${shared} (shared/ must sit beside the repository)`);
  const dir = join(root, 'bench', '.work', `compression-fixtures-${scale}`);
  if (!existsSync(join(dir, 'catalog.json'))) {
    await mkdir(dir, { recursive: true });
    const r = spawnSync('python3', [shared, 'build', dir, String(scale)], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('fixtures.py build failed');
  }
  const catalog = JSON.parse(await readFile(join(dir, 'catalog.json'), 'utf8')) as { repo: string; index: string }[];
  const edge = new Set(['kubeedge/installation-package', 'library/eclipse-mosquitto', 'kubeedge/pause']);
  const wanted = new Set<string>();
  const blob = (d: string) => join(dir, 'blobs', d.replace('sha256:', ''));
  for (const img of catalog.filter((c) => !edge.has(c.repo))) {
    const idx = JSON.parse(await readFile(blob(img.index), 'utf8')) as { manifests: { digest: string; platform: { architecture: string } }[] };
    const m = idx.manifests.find((e) => e.platform.architecture === 'arm64');
    if (!m) continue;
    const man = JSON.parse(await readFile(blob(m.digest), 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
    for (const d of [m.digest, man.config.digest, ...man.layers.map((l) => l.digest)]) wanted.add(blob(d));
  }
  return [...wanted].sort();
}

function binaries(): string[] {
  // Real, large executables present on the build machine stand in for k3s/keadm/containerd.
  const candidates = ['/usr/sbin/dockerd', '/usr/bin/containerd', '/usr/bin/docker-registry', '/usr/bin/skopeo', process.execPath];
  return candidates.filter((p) => existsSync(p));
}

async function measure(kind: Compression, files: { path: string; file: string }[], out: string): Promise<{ seconds: number; bytes: number }> {
  const t0 = process.hrtime.bigint();
  const c = createCompressor(kind);
  let bytes = 0;
  const count = new Transform({
    transform(chunk: Buffer, _e, cb) {
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  // As a bundle is written: uncompressed (no compressor), the tar stream goes straight into the file.
  const file = createWriteStream(out);
  const sink = c ? pipeline(c.output, count, file) : undefined;
  const tw = new TarWriter(c?.input ?? file, { mtime: 0 });
  for (const f of files) await tw.addFile(f.path, f.file);
  await tw.finish();
  if (c) {
    c.input.end();
    await Promise.all([sink, c.done]);
  } else {
    file.end();
    await finished(file);
    bytes = tw.bytesWritten;
  }
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, bytes };
}

const blobs = await fixtureBlobs();
const bins = binaries();
const files = [
  ...bins.map((b, i) => ({ path: `b/bin/${i}-${b.split('/').pop()}`, file: b })),
  ...blobs.map((b) => ({ path: `b/images/blobs/sha256/${b.split('/').pop()}`, file: b })),
];
let imageBytes = 0;
for (const b of blobs) imageBytes += (await stat(b)).size;
let binBytes = 0;
for (const b of bins) binBytes += (await stat(b)).size;
const work = join(root, 'bench', '.work');
await mkdir(work, { recursive: true });
console.log(`fixture scale ${scale}: ${blobs.length} image blobs (${(imageBytes / 1e6).toFixed(1)} MB, gzip layers as registries serve them); ${bins.length} executables (${(binBytes / 1e6).toFixed(1)} MB)`);
for (const [label, set] of [
  ['image blobs', files.filter((f) => f.path.startsWith('b/images/'))],
  ['executables', files.filter((f) => f.path.startsWith('b/bin/'))],
] as const) {
  const results: Record<string, { seconds: number; bytes: number }> = {};
  for (const kind of ['none', 'gzip', 'zstd'] as const) results[kind] = await measure(kind, set, join(work, `compression.${kind}`));
  const base = results.none ?? { seconds: 1, bytes: 1 };
  console.log(`\n${label}:`);
  for (const [kind, r] of Object.entries(results)) {
    const saved = (1 - r.bytes / base.bytes) * 100;
    const mbps = base.bytes / 1e6 / r.seconds;
    console.log(`  ${kind.padEnd(5)} ${r.seconds.toFixed(2).padStart(6)} s  ${(r.bytes / 1e6).toFixed(1).padStart(7)} MB  saved ${saved.toFixed(1).padStart(5)}%  ${mbps.toFixed(0).padStart(5)} MB/s in`);
  }
}
spawnSync('rm', ['-f', ...['none', 'gzip', 'zstd'].map((k) => join(work, `compression.${k}`))]);
