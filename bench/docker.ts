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
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createDockerEngine } from '../src/engines/docker/index.js';
import { parseArch } from '../src/platform.js';
import { startDockerd, type TestDockerd } from '../test/harness/dockerd.js';
import { ARCH, prepareFixtures, requireTools, root, scaleArg, seedBaseline, startFixtureRegistries, timed, type CatalogEntry } from './lib.js';

async function main(): Promise<void> {
  requireTools([
    ['/usr/bin/docker-registry', 'docker-registry'],
    ['/usr/sbin/dockerd', 'docker.io'],
  ] as const);
  const scale = scaleArg();
  const work = join(root, 'bench', '.work');
  const runDir = join(work, 'docker-run');
  await rm(runDir, { recursive: true, force: true });
  await mkdir(runDir, { recursive: true });
  const { fixtures, catalog, cloud } = await prepareFixtures(scale);

  let regs: Awaited<ReturnType<typeof startFixtureRegistries>> | undefined;
  const daemons: TestDockerd[] = [];
  try {
    regs = await startFixtureRegistries(fixtures, catalog.length);
    const { hub, k8s, local } = regs;
    const canonical = (c: CatalogEntry) => `${c.registry}/${c.repo}:${c.tag}`;
    const newDaemon = async () => {
      const d = await startDockerd({ insecureRegistries: [hub.host, k8s.host], registryMirrors: [hub.url] });
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
    const seedRun = await seedBaseline({ cloud, local, runDir, daemon: await newDaemon() });
    const seed = { seconds: seedRun.seconds };
    const seedBytes = seedRun.bytes;
    const pullS = seedRun.pull;
    const saveS = seedRun.save;
    const seedTar = seedRun.tar;

    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
    const t = cold.value.timings;
    const ratio = seed.seconds / cold.seconds;
    console.log(`\ncloud ${ARCH} set: ${cloud.length} images, scale ${scale}, dockerd ${engine.daemonVersion} (docker save format: ${cold.value.saveFormat})`);
    console.log(`  ${'docker engine (cold)'.padEnd(34)} ${cold.seconds.toFixed(2).padStart(7)} s  ${mb(cold.value.size).padStart(10)}`);
    console.log(`    pull ${t.pull.toFixed(2)} s · save+gzip ${t.save.toFixed(2)} s · archive ${t.archive.toFixed(2)} s (wall time with ≥1 image in the phase; phases overlap across images)`);
    console.log(`  ${'docker engine (warm, same daemon)'.padEnd(34)} ${warm.seconds.toFixed(2).padStart(7)} s  ${mb(warm.value.size).padStart(10)}`);
    console.log(`  ${'seed: docker pull/save + tar czf'.padEnd(34)} ${seed.seconds.toFixed(2).padStart(7)} s  ${mb(seedBytes).padStart(10)}`);
    console.log(`    pull ${pullS.toFixed(2)} s · save ${saveS.toFixed(2)} s · tar czf ${seedTar.toFixed(2)} s`);
    const ok = ratio >= 3;
    console.log(`\n  ${ok ? 'PASS' : 'FAIL'}  engine ≥ 3× faster than seed            ${ratio.toFixed(2)}×`);
    process.exitCode = ok ? 0 : 1;
  } finally {
    for (const d of daemons) await d.stop();
    await regs?.stop();
  }
}

main().catch((e: unknown) => {
  console.error(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
