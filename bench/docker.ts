/**
 * Docker-engine benchmark against the reference fixtures (../shared/bench/fixtures.py), cloud arm64 set.
 *
 *   node --import tsx bench/docker.ts                 # scale 0.1 (default)
 *   node --import tsx bench/docker.ts --scale 0.25    # or KP_BENCH_SCALE=0.25
 *
 * Fixtures are built once per scale into bench/.work/fixtures-<scale>/ and pushed to two fresh local
 * docker-registry instances (docker.io and registry.k8s.io images). Each approach then runs against its
 * own fresh dockerd (empty image store; the docker.io registry is its mirror, both registries insecure):
 *   engine    `--engine docker`: pull per image for linux/arm64, docker save streamed into gzip blobs,
 *             one deduplicated OCI+docker archive (time split: pull, save, archive)
 *   warm      the engine again on the same daemon and cache
 *   seed      the design documents' approach (shared/bench/baselines.sh `seed()`): docker pull
 *             --platform + docker tag + docker save per image, then tar czf of the directory
 * and checks: engine at least 3× faster than seed. Exits 1 when missed.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDockerEngine } from '../src/engines/docker/index.js';
import { parseArch } from '../src/platform.js';
import { startDockerd, type TestDockerd } from '../test/harness/dockerd.js';
import { startRegistry, type TestRegistry } from '../test/harness/registry.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const fixturesPy = join(root, '..', 'shared', 'bench', 'fixtures.py');
const EDGE = new Set(['kubeedge/installation-package', 'library/eclipse-mosquitto', 'kubeedge/pause']);
const ARCH = 'arm64';

interface CatalogEntry {
  registry: string;
  repo: string;
  tag: string;
}

function scaleArg(): number {
  const i = process.argv.indexOf('--scale');
  const raw = i >= 0 ? process.argv[i + 1] : process.env.KP_BENCH_SCALE;
  const s = Number(raw ?? '0.1');
  if (!Number.isFinite(s) || s <= 0 || s > 4) throw new Error(`bad scale '${raw}' (use e.g. 0.1 or 1)`);
  return s;
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', rej);
    child.on('close', (code) => res({ code, stdout, stderr }));
  });
}

async function must(cmd: string, args: string[], what: string): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, value };
}

async function main(): Promise<void> {
  if (!existsSync(fixturesPy)) {
    console.error(`bench: ${fixturesPy} is missing (the shared reference fixtures beside the repository)`);
    process.exit(2);
  }
  for (const [bin, pkg] of [
    ['/usr/bin/docker-registry', 'docker-registry'],
    ['/usr/sbin/dockerd', 'docker.io'],
  ] as const) {
    if (!existsSync(bin)) {
      console.error(`bench: ${bin} is missing (apt-get install ${pkg})`);
      process.exit(2);
    }
  }
  const scale = scaleArg();
  const work = join(root, 'bench', '.work');
  const fixtures = join(work, `fixtures-${scale}`);
  const runDir = join(work, 'docker-run');
  await rm(runDir, { recursive: true, force: true });
  await mkdir(runDir, { recursive: true });
  if (!existsSync(join(fixtures, 'catalog.json'))) {
    console.log(`building fixtures at scale ${scale} into ${fixtures} (once per scale)…`);
    const b = await timed(() => must('python3', [fixturesPy, 'build', fixtures, String(scale)], 'fixtures.py build'));
    console.log(`  built in ${b.seconds.toFixed(1)} s`);
  }
  const catalog = JSON.parse(await readFile(join(fixtures, 'catalog.json'), 'utf8')) as CatalogEntry[];
  const cloud = catalog.filter((c) => !EDGE.has(c.repo));

  let hub: TestRegistry | undefined;
  let k8s: TestRegistry | undefined;
  const daemons: TestDockerd[] = [];
  try {
    hub = await startRegistry();
    k8s = await startRegistry();
    const p = await timed(() => must('python3', [fixturesPy, 'push', fixtures, String(hub!.port), String(k8s!.port)], 'fixtures.py push'));
    console.log(`pushed ${catalog.length} images to two registries in ${p.seconds.toFixed(1)} s`);
    const local = (c: CatalogEntry) => `${c.registry === 'registry.k8s.io' ? k8s!.host : hub!.host}/${c.repo}:${c.tag}`;
    const canonical = (c: CatalogEntry) => `${c.registry}/${c.repo}:${c.tag}`;
    const newDaemon = async () => {
      const d = await startDockerd({ insecureRegistries: [hub!.host, k8s!.host], registryMirrors: [hub!.url] });
      daemons.push(d);
      return d;
    };

    // The engine: docker.io images by their canonical names through the daemon's mirror; registry.k8s.io
    // ones by the local registry's name (a daemon mirrors docker.io only).
    const engineImages = cloud.map((c) => (c.registry === 'docker.io' ? canonical(c) : local(c)));
    const d1 = await newDaemon();
    const engine = await createDockerEngine({ host: d1.host });
    const cacheDir = join(runDir, 'cache');
    const cold = await timed(() => engine.archive({ images: engineImages, platform: parseArch(ARCH), outFile: join(runDir, 'engine.tar'), cacheDir, mtime: 0 }));
    const warm = await timed(() => engine.archive({ images: engineImages, platform: parseArch(ARCH), outFile: join(runDir, 'engine-warm.tar'), cacheDir, mtime: 0 }));
    await engine.close();
    if (warm.value.sha256 !== cold.value.sha256) throw new Error('the warm rebuild produced different archive bytes than the cold build');

    // seed(): docker pull + tag + save per image, then tar czf (gzip -6, one core), on a fresh daemon.
    const d2 = await newDaemon();
    const seedDir = join(runDir, 'seed', 'images');
    await mkdir(seedDir, { recursive: true });
    const docker = async (args: string[]) => {
      const r = await d2.docker(args);
      if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
    };
    let pullS = 0;
    let saveS = 0;
    const seed = await timed(async () => {
      for (const c of cloud) {
        pullS += (await timed(() => docker(['pull', '-q', '--platform', `linux/${ARCH}`, local(c)]))).seconds;
        await docker(['tag', local(c), canonical(c)]);
        saveS += (await timed(() => docker(['save', canonical(c), '-o', join(seedDir, `${canonical(c).replace(/[/:]/g, '-')}.tar`)]))).seconds;
      }
      return timed(() => must('tar', ['czf', join(runDir, 'seed.tar.gz'), '-C', join(runDir, 'seed'), 'images'], 'tar czf'));
    });
    const seedBytes = (await stat(join(runDir, 'seed.tar.gz'))).size;

    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
    const t = cold.value.timings;
    const ratio = seed.seconds / cold.seconds;
    console.log(`\ncloud ${ARCH} set: ${cloud.length} images, scale ${scale}, dockerd ${engine.daemonVersion} (docker save format: ${cold.value.saveFormat})`);
    console.log(`  ${'docker engine (cold)'.padEnd(34)} ${cold.seconds.toFixed(2).padStart(7)} s  ${mb(cold.value.size).padStart(10)}`);
    console.log(`    pull ${t.pull.toFixed(2)} s · save+gzip ${t.save.toFixed(2)} s · archive ${t.archive.toFixed(2)} s (wall time with ≥1 image in the phase; phases overlap across images)`);
    console.log(`  ${'docker engine (warm, same daemon)'.padEnd(34)} ${warm.seconds.toFixed(2).padStart(7)} s  ${mb(warm.value.size).padStart(10)}`);
    console.log(`  ${'seed: docker pull/save + tar czf'.padEnd(34)} ${seed.seconds.toFixed(2).padStart(7)} s  ${mb(seedBytes).padStart(10)}`);
    console.log(`    pull ${pullS.toFixed(2)} s · save ${saveS.toFixed(2)} s · tar czf ${seed.value.seconds.toFixed(2)} s`);
    const ok = ratio >= 3;
    console.log(`\n  ${ok ? 'PASS' : 'FAIL'}  engine ≥ 3× faster than seed            ${ratio.toFixed(2)}×`);
    process.exitCode = ok ? 0 : 1;
  } finally {
    for (const d of daemons) await d.stop();
    await hub?.stop();
    await k8s?.stop();
  }
}

main().catch((e: unknown) => {
  console.error(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
