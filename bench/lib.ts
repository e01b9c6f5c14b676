/**
 * Shared set-up of the benchmarks: the reference fixtures (../shared/bench/fixtures.py) built once per
 * scale into bench/.work/, pushed to two fresh local docker-registry instances (docker.io and
 * registry.k8s.io images), and small process/timing helpers.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdir, open, readdir, stat } from 'node:fs/promises';
import { startRegistry, type TestRegistry } from '../test/harness/registry.js';
import type { TestDockerd } from '../test/harness/dockerd.js';
import { addEntrypointLayers } from './fixup.js';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// KP_BENCH_SHARED: where shared/bench is when the checkout does not sit beside it (a git worktree elsewhere).
export const shared = process.env.KP_BENCH_SHARED ? resolve(process.env.KP_BENCH_SHARED) : resolve(root, '..', 'shared', 'bench');
export const fixturesPy = join(shared, 'fixtures.py');
export const EDGE = new Set(['kubeedge/installation-package', 'library/eclipse-mosquitto', 'kubeedge/pause']);
export const ARCH = 'arm64';
export const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(',');

export interface CatalogEntry {
  registry: string;
  repo: string;
  tag: string;
}

export function scaleArg(): number {
  const i = process.argv.indexOf('--scale');
  const raw = i >= 0 ? process.argv[i + 1] : process.env.KP_BENCH_SCALE;
  const s = Number(raw ?? '0.25');
  if (!Number.isFinite(s) || s <= 0 || s > 4) throw new Error(`bad scale '${raw}' (use e.g. 0.25 or 1)`);
  return s;
}

/** `stamp`: every stderr chunk prefixed with the seconds since the start (a trace of where time goes). */
export function run(cmd: string, args: string[], opts: { cwd?: string; quiet?: boolean; stamp?: boolean } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const t0 = Date.now();
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += opts.stamp ? `[${((Date.now() - t0) / 1000).toFixed(2)}] ${d.toString()}` : d.toString()));
    child.on('error', rej);
    child.on('close', (code) => res({ code, stdout, stderr }));
  });
}

export async function must(cmd: string, args: string[], what: string): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/**
 * `sync` before a timed phase, so that it starts with nothing of an earlier phase still on its way to the
 * disk. This VM's root is ext4 mounted with `discard`: the blocks a removal freed (the previous round's
 * outputs and caches, ~1.5 GB in the six-bundle bench) are discarded at the next journal commit, which
 * the first fsync of a timed build forced, and the dirty pages of an untimed copy were written back while
 * the next phase ran. Measured 2026-12-03 (six bundles, medians of 4 interleaved): 4.36 s without, 4.08 s
 * with; the same build without its fsyncs took 4.13 / 4.10 s, so the difference was the removals, not the
 * build's own durable writes. The floors start after one too.
 */
export async function settle(...inputs: string[]): Promise<void> {
  await must('sync', [], 'sync');
  const buf = Buffer.allocUnsafe(1 << 20);
  for (const p of inputs) await readThrough(p, buf);
}

/*
 * `settle(...inputs)` also reads the phase's inputs (files, or directories read recursively) once, so that
 * every timed phase reads them from the page cache. This VM runs a DAMON scheme over its physical memory
 * (/sys/kernel/mm/damon/admin/kdamonds/0/contexts/0/schemes/0: action pageout, nr_accesses 0-1, age ≥ 12
 * aggregations of 500 ms, up to 128 MiB a second): page cache not read for ~6 s is dropped. Files written
 * by one phase and read by the next (the cold build's cache by the warm build, the built tarballs by the
 * copy floor) were then read partly from the disk or not, by the timing. Measured 2026-12-04: the first
 * warm build after the cold one took 0.96-1.68 s in 4 of 5 rounds (its archive's copying 1.3 s instead of
 * 0.2 s, the fsync 3-9 ms), six more right after it 0.29-0.37 s; with the cache read (`cat`, 0.02 s)
 * before it, 0.28-0.34 s in 5 of 5. (What settle cannot take away: the VM also reports freed memory
 * back to the host at once (virtio-balloon free page reporting, /sys/module/page_reporting/parameters
 * min_free_ms 0), and a write into such memory faults per page: 1 MiB writes took 1.3 ms instead of
 * 0.08 ms in slow runs (strace). The floors and the builds that write new files all swing with it.)
 */
async function readThrough(path: string, buf: Buffer): Promise<void> {
  const st = await stat(path);
  if (st.isDirectory()) {
    for (const e of await readdir(path)) await readThrough(join(path, e), buf);
    return;
  }
  if (!st.isFile()) return;
  const fh = await open(path, 'r');
  try {
    while ((await fh.read(buf, 0, buf.length)).bytesRead > 0);
  } finally {
    await fh.close();
  }
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, value };
}


/** Exits with status 2 naming what is missing (the fixture builder, or a program and its apt package). */
export function requireTools(tools: readonly (readonly [string, string])[]): void {
  if (!existsSync(fixturesPy)) {
    console.error(`bench: ${fixturesPy} is missing. The bench needs the shared reference fixtures beside the repository (../shared/bench/fixtures.py).`);
    process.exit(2);
  }
  for (const [bin, pkg] of tools) {
    if (!existsSync(bin)) {
      console.error(`bench: ${bin} is missing (apt-get install ${pkg})`);
      process.exit(2);
    }
  }
}

/** Builds the fixtures at `scale` once (bench/.work/fixtures-<scale>/) and returns the catalog and its cloud set. */
export async function prepareFixtures(scale: number): Promise<{ fixtures: string; catalog: CatalogEntry[]; cloud: CatalogEntry[] }> {
  const fixtures = join(root, 'bench', '.work', `fixtures-${scale}`);
  if (!existsSync(join(fixtures, 'catalog.json'))) {
    console.log(`building fixtures at scale ${scale} into ${fixtures} (once per scale)…`);
    // fixtures.py reads the scale as its third argument.
    const b = await timed(() => must('python3', [fixturesPy, 'build', fixtures, String(scale)], 'fixtures.py build'));
    console.log(`  built in ${b.seconds.toFixed(1)} s`);
  }
  await addEntrypointLayers(fixtures);
  const catalog = JSON.parse(await readFile(join(fixtures, 'catalog.json'), 'utf8')) as CatalogEntry[];
  return { fixtures, catalog, cloud: catalog.filter((c) => !EDGE.has(c.repo)) };
}

/** Starts the two registries and pushes the fixtures; `local(c)` is an image's reference at its registry. */
export async function startFixtureRegistries(fixtures: string, count: number): Promise<{ hub: TestRegistry; k8s: TestRegistry; local(c: CatalogEntry): string; stop(): Promise<void> }> {
  const hub = await startRegistry();
  let k8s: TestRegistry | undefined;
  try {
    k8s = await startRegistry();
    const k = k8s;
    const p = await timed(() => must('python3', [fixturesPy, 'push', fixtures, String(hub.port), String(k.port)], 'fixtures.py push'));
    console.log(`pushed ${count} images to two registries in ${p.seconds.toFixed(1)} s`);
    return {
      hub,
      k8s: k,
      local: (c) => `${c.registry === 'registry.k8s.io' ? k.host : hub.host}/${c.repo}:${c.tag}`,
      async stop() {
        await k.stop();
        await hub.stop();
      },
    };
  } catch (e) {
    await k8s?.stop();
    await hub.stop();
    throw e;
  }
}

/**
 * The design documents' approach (shared/bench/baselines.sh `seed()`): per image `docker pull
 * --platform`, tag to the canonical name, `docker save`; then one `tar czf` of all the tars.
 */
export async function seedBaseline(opts: { cloud: CatalogEntry[]; local(c: CatalogEntry): string; runDir: string; daemon: TestDockerd; remove?: boolean }): Promise<{ seconds: number; bytes: number; pull: number; save: number; tar: number; rmi?: number }> {
  const canonical = (c: CatalogEntry) => `${c.registry}/${c.repo}:${c.tag}`;
  const seedDir = join(opts.runDir, 'seed', 'images');
  await mkdir(seedDir, { recursive: true });
  const docker = async (args: string[]) => {
    const r = await opts.daemon.docker(args);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  };
  let pull = 0;
  let save = 0;
  const all = await timed(async () => {
    for (const c of opts.cloud) {
      pull += (await timed(() => docker(['pull', '-q', '--platform', `linux/${ARCH}`, opts.local(c)]))).seconds;
      await docker(['tag', opts.local(c), canonical(c)]);
      save += (await timed(() => docker(['save', canonical(c), '-o', join(seedDir, `${canonical(c).replace(/[/:]/g, '-')}.tar`)]))).seconds;
    }
    return timed(() => must('tar', ['czf', join(opts.runDir, 'seed.tar.gz'), '-C', join(opts.runDir, 'seed'), 'images'], 'tar czf'));
  });
  const bytes = (await stat(join(opts.runDir, 'seed.tar.gz'))).size;
  // remove: the daemon's own deletion of what was pulled (`docker rmi` of both names, one image at a
  // time), timed apart from the seed: what an engine that leaves the daemon as it found it also waits for.
  let rmi: number | undefined;
  if (opts.remove) {
    rmi = 0;
    for (const c of opts.cloud) rmi += (await timed(() => docker(['rmi', opts.local(c), canonical(c)]))).seconds;
  }
  return { seconds: all.seconds, bytes, pull, save, tar: all.value.seconds, ...(rmi !== undefined ? { rmi } : {}) };
}
