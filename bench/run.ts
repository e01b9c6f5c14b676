/**
 * Registry-engine benchmark against the reference fixtures (../shared/bench/fixtures.py).
 *
 *   npm run bench                          # scale 0.25, 3 rounds (KP_BENCH_SCALE / KP_BENCH_ROUNDS)
 *   npm run bench -- --scale 1             # the full reference set (~1.8 GB of fixtures, built once)
 *   npm run bench -- --netem               # instead: registries behind latency + a rate limit (bench/netem.ts)
 *   npm run bench -- --six                 # instead: the whole six-bundle build (bench/six.ts)
 *
 * For the cloud arm64 set (every image but the edge ones, as in shared/bench/baselines.sh), per round:
 *   floor       every unique blob fetched ONCE over HTTP, 4 parallel curls, each to its own file
 *               (manifest resolution included, as baselines.sh floor())
 *   disk floor  the same bytes copied from the blob cache (4 parallel cp, each to its own file)
 *   cold/warm   our engine with an empty / the populated cache, in a child process (engine time, i.e.
 *               without node start-up, which has its own target)
 *   skopeo      skopeo copy … oci-archive per image, then tar cf (reference)
 * once: the real CLI (`node bin/kubeprepare.js images`), cold and warm, under /usr/bin/time for its
 * peak RSS; start-up of `--version` / `--help`. docker pull/save is `npm run bench:docker`'s job.
 * Targets on the medians: cold ≤ 1.5× floor, warm ≤ 1.0× floor, peak RSS ≤ 150 MB, start-up ≤ 0.15 s.
 * Exits 1 when a target is missed.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { diskFloor, engineChild, median, networkFloor, printChecks, roundsArg, startupSeconds, type Check, type EngineResult } from './floor.js';
import { netemProfile } from './netem.js';
import { sixBundles } from './six.js';
import { ARCH, must, prepareFixtures, requireTools, root, run, scaleArg, settle, startFixtureRegistries, timed, type CatalogEntry } from './lib.js';

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** The real CLI under /usr/bin/time: wall seconds and peak RSS (KB) of the kubeprepare process. */
async function cliImages(images: string[], outFile: string, cacheDir: string, registriesFile: string): Promise<{ wall: number; maxRssKb: number }> {
  const args = ['-f', '%M', process.execPath, join(root, 'bin', 'kubeprepare.js'), 'images', '-q', '--arch', ARCH, '--out', outFile, '--cache-dir', cacheDir, '--registries', registriesFile, ...images];
  const t = await timed(() => run('/usr/bin/time', args));
  if (t.value.code !== 0) throw new Error(`kubeprepare images failed: ${t.value.stderr}`);
  return { wall: t.seconds, maxRssKb: Number(t.value.stderr.trim().split('\n').pop()) };
}

async function skopeo(cloud: CatalogEntry[], local: (c: CatalogEntry) => string, dir: string): Promise<number> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'images'), { recursive: true });
  return (
    await timed(async () => {
      for (const c of cloud) {
        const name = `${c.registry}/${c.repo}:${c.tag}`;
        const dest = `oci-archive:${join(dir, 'images', `${name.replace(/[/:]/g, '-')}.tar`)}:${name}`;
        await must('skopeo', ['--override-arch', ARCH, '--override-variant', 'v8', 'copy', '-q', '--src-tls-verify=false', `docker://${local(c)}`, dest], `skopeo copy ${name}`);
      }
      await must('tar', ['cf', join(dir, 'skopeo-oci.tar'), '-C', dir, 'images'], 'tar cf');
    })
  ).seconds;
}

/** Start-up: bench/startup.ts when the "cli" work brought it (its output and exit code), else measured here. */
async function startupChecks(): Promise<Check[]> {
  const script = join(root, 'bench', 'startup.ts');
  if (existsSync(script)) {
    const r = await run(process.execPath, ['--import', 'tsx', script]);
    process.stdout.write(r.stdout);
    return [['start-up (bench/startup.ts)', r.code === 0, `exit ${r.code}`]];
  }
  const s = await startupSeconds();
  return [
    ['--version ≤ 0.15 s', s.version <= 0.15, `${s.version.toFixed(3)} s`],
    ['--help ≤ 0.15 s', s.help <= 0.15, `${s.help.toFixed(3)} s`],
  ];
}

async function main(): Promise<void> {
  requireTools([
    ['/usr/bin/docker-registry', 'docker-registry'],
    ['/usr/bin/skopeo', 'skopeo'],
    ['/usr/bin/curl', 'curl'],
    ['/usr/bin/time', 'time'],
  ] as const);
  if (process.argv.includes('--netem') || process.env.KP_BENCH_NETEM === '1') return netemProfile();
  const scale = scaleArg();
  const rounds = roundsArg();
  if (process.argv.includes('--six') || process.env.KP_BENCH_SIX === '1') {
    process.exitCode = printChecks(await sixBundles((await prepareFixtures(scale)).fixtures, rounds)) ? 1 : 0;
    return;
  }
  const runDir = join(root, 'bench', '.work', 'run');
  await rm(runDir, { recursive: true, force: true });
  await mkdir(runDir, { recursive: true });
  const { fixtures, catalog, cloud } = await prepareFixtures(scale);
  const regs = await startFixtureRegistries(fixtures, catalog.length);
  try {
    const registriesFile = join(runDir, 'registries.yaml');
    await writeFile(registriesFile, `mirrors:\n  docker.io:\n    endpoint: ["${regs.hub.url}"]\n  registry.k8s.io:\n    endpoint: ["${regs.k8s.url}"]\n`);
    const images = cloud.map((c) => `${c.registry}/${c.repo}:${c.tag}`);
    const r: Record<'floor' | 'disk' | 'cold' | 'warm' | 'skopeo', number[]> = { floor: [], disk: [], cold: [], warm: [], skopeo: [] };
    let last: { cold: EngineResult; warm: EngineResult; blobs: number } | undefined;
    const served = [regs.hub.root, regs.k8s.root];
    for (let i = 0; i < rounds; i++) {
      const cacheDir = join(runDir, `cache-${i}`);
      // Each timed phase starts with the disk settled and its inputs in the page cache (lib.ts settle):
      // the registries' storage, and the blob cache for the warm build and the disk floor.
      await settle(...served);
      const floor = await networkFloor([{ refs: cloud.map(regs.local), arch: ARCH }], join(runDir, 'floor'));
      // The previous round's outputs are removed before the timed runs, as the floor's files are: replacing
      // a 163 MB file costs ~0.1 s on this VM (its blocks are freed, and discarded, inside the rename).
      await rm(join(runDir, 'cold.tar'), { force: true });
      await rm(join(runDir, 'warm.tar'), { force: true });
      await settle(...served);
      const cold = await engineChild({ images, arch: ARCH, outFile: join(runDir, 'cold.tar'), cacheDir, registriesFile });
      await settle(cacheDir, ...served);
      const warm = await engineChild({ images, arch: ARCH, outFile: join(runDir, 'warm.tar'), cacheDir, registriesFile });
      if (warm.sha256 !== cold.sha256) throw new Error('the warm rebuild produced different archive bytes than the cold build');
      await settle(cacheDir);
      const disk = await diskFloor(floor.blobs, cacheDir, join(runDir, 'disk'));
      await settle(...served);
      const sk = await skopeo(cloud, regs.local, join(runDir, 'skopeo'));
      for (const [k, v] of [['floor', floor.seconds], ['disk', disk], ['cold', cold.seconds], ['warm', warm.seconds], ['skopeo', sk]] as const) r[k].push(v);
      console.log(`round ${i + 1}/${rounds}: floor ${floor.seconds.toFixed(2)} s · disk ${disk.toFixed(2)} s · cold ${cold.seconds.toFixed(2)} s · warm ${warm.seconds.toFixed(2)} s · skopeo ${sk.toFixed(2)} s`);
      if (i > 0) await rm(join(runDir, `cache-${i - 1}`), { recursive: true, force: true });
      last = { cold, warm, blobs: floor.blobs.length };
    }
    const cliCache = join(runDir, 'cache-cli');
    await settle(...served);
    const cliCold = await cliImages(images, join(runDir, 'cli-cold.tar'), cliCache, registriesFile);
    await settle(cliCache, ...served);
    const cliWarm = await cliImages(images, join(runDir, 'cli-warm.tar'), cliCache, registriesFile);
    const floorBytes = last!.cold.uniqueBlobBytes;
    const m = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, median(v)])) as Record<keyof typeof r, number>;
    console.log(`\ncloud ${ARCH} set: ${cloud.length} images, ${last!.blobs} unique blobs (${mb(floorBytes)} with manifests), scale ${scale}, medians of ${rounds} round(s)`);
    const rows: [string, number][] = [
      ['floor (each blob once, 4 curls, own files)', m.floor],
      ['disk floor (same bytes copied from cache)', m.disk],
      ['kubeprepare cold (engine)', m.cold],
      ['kubeprepare warm (engine)', m.warm],
      ['skopeo oci-archive + tar', m.skopeo],
    ];
    for (const [name, s] of rows) console.log(`  ${name.padEnd(44)} ${s.toFixed(2).padStart(7)} s  ${(s / m.floor).toFixed(2).padStart(5)}× floor`);
    console.log(`  CLI process (node bin/kubeprepare.js images): cold ${cliCold.wall.toFixed(2)} s, warm ${cliWarm.wall.toFixed(2)} s, incl. start-up`);
    console.log(`  docker pull/save + tar czf: see npm run bench:docker (its own daemon, rounds and medians)`);
    await stat(join(runDir, 'cold.tar'));
    const rss = Math.max(cliCold.maxRssKb, cliWarm.maxRssKb, last!.cold.maxRssKb, last!.warm.maxRssKb);
    const checks: Check[] = [
      ['cold ≤ 1.5× floor', m.cold <= 1.5 * m.floor, `${(m.cold / m.floor).toFixed(2)}× (${m.cold.toFixed(2)} s vs ${m.floor.toFixed(2)} s)`],
      ['warm ≤ 1.0× floor', m.warm <= m.floor, `${(m.warm / m.floor).toFixed(2)}× (disk floor ${(m.disk / m.floor).toFixed(2)}×)`],
      ['archive ≤ unique blob bytes + 1%', last!.cold.size <= floorBytes * 1.01, `${mb(last!.cold.size)} vs ${mb(floorBytes)}`],
      ['peak RSS ≤ 150 MB', rss <= 150 * 1024, `CLI cold ${(cliCold.maxRssKb / 1024).toFixed(0)} MB, warm ${(cliWarm.maxRssKb / 1024).toFixed(0)} MB; engine child ${(last!.cold.maxRssKb / 1024).toFixed(0)} MB`],
      ...(await startupChecks()),
    ];
    process.exitCode = printChecks(checks) ? 1 : 0;
  } finally {
    await regs.stop();
  }
}

main().catch((e: unknown) => {
  console.error(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
