/**
 * Registry-engine benchmark against the reference fixtures (../shared/bench/fixtures.py).
 *
 *   npm run bench                       # scale 0.25 (about 450 MB of fixtures; a few minutes on 2 cores)
 *   KP_BENCH_SCALE=1 npm run bench      # the full reference set (about 1.8 GB; fixtures take ~3 min to build)
 *   npm run bench -- --scale 0.1        # same, as an argument
 *
 * Fixtures are built once per scale into bench/.work/fixtures-<scale>/ (gitignored) and pushed to two
 * fresh local docker-registry instances (docker.io and registry.k8s.io images). Then, in one run, for
 * the cloud arm64 set (every image but the edge ones, as in shared/bench/baselines.sh):
 *   floor  as in shared/bench/baselines.sh: manifests resolved, every unique blob fetched by 4 parallel
 *          curls (to /dev/null), then once more sequentially into one file
 *   cold   our engine with an empty cache (child process: its time and peak RSS)
 *   warm   our engine again with the cache populated
 *   skopeo skopeo copy … oci-archive: per image, then tar cf (reference baseline)
 *   docker the design documents' docker pull --platform + docker save per image, then tar czf (baseline)
 * and checks: cold ≤ 1.5× floor, warm ≤ 0.7× floor, archive ≤ unique blob bytes + 1%, peak RSS ≤ 150 MB.
 * Exits 1 when a target is missed.
 */
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ACCEPT, ARCH, must, prepareFixtures, requireTools, root, scaleArg, seedBaseline, startFixtureRegistries, timed } from './lib.js';
import { startDockerd } from '../test/harness/dockerd.js';

async function main(): Promise<void> {
  requireTools([
    ['/usr/bin/docker-registry', 'docker-registry'],
    ['/usr/bin/skopeo', 'skopeo'],
    ['/usr/sbin/dockerd', 'docker.io'],
    ['/usr/bin/curl', 'curl'],
  ] as const);
  const scale = scaleArg();
  const work = join(root, 'bench', '.work');
  const run1 = join(work, 'run');
  await rm(run1, { recursive: true, force: true });
  await mkdir(run1, { recursive: true });
  const { fixtures, catalog, cloud } = await prepareFixtures(scale);

  let regs: Awaited<ReturnType<typeof startFixtureRegistries>> | undefined;
  try {
    regs = await startFixtureRegistries(fixtures, catalog.length);
    const { hub, k8s, local } = regs;

    // Floor: resolve manifests, then fetch every unique blob once (4 parallel curls).
    const floorFile = join(run1, 'floor.bin');
    const floor = await timed(async () => {
      const urls = new Map<string, string>();
      for (const c of cloud) {
        const host = c.registry === 'registry.k8s.io' ? k8s.host : hub.host;
        const idx = (await (await fetch(`http://${host}/v2/${c.repo}/manifests/${c.tag}`, { headers: { accept: ACCEPT } })).json()) as { manifests: { digest: string; platform: { architecture: string } }[] };
        const m = idx.manifests.find((e) => e.platform.architecture === ARCH)!;
        const man = (await (await fetch(`http://${host}/v2/${c.repo}/manifests/${m.digest}`, { headers: { accept: ACCEPT } })).json()) as { config: { digest: string }; layers: { digest: string }[] };
        for (const b of [man.config, ...man.layers]) if (!urls.has(b.digest)) urls.set(b.digest, `http://${host}/v2/${c.repo}/blobs/${b.digest}`);
      }
      // Exactly as shared/bench/baselines.sh: 4 parallel curls to /dev/null, then every blob once more,
      // sequentially, appended to one file; both are part of the floor's time.
      const list = [...urls.values()];
      const queue = [...list];
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          for (let u = queue.shift(); u; u = queue.shift()) await must('curl', ['-sf', '-o', '/dev/null', u], `curl ${u}`);
        }),
      );
      await must('sh', ['-c', `: > "$0"; for u in "$@"; do curl -sf "$u" >> "$0" || exit 1; done`, floorFile, ...list], 'floor download');
      return urls.size;
    });
    const floorBytes = (await stat(floorFile)).size;

    // Our engine, cold then warm, each in a child process.
    const registriesFile = join(run1, 'registries.yaml');
    await writeFile(registriesFile, `mirrors:\n  docker.io:\n    endpoint: ["${hub.url}"]\n  registry.k8s.io:\n    endpoint: ["${k8s.url}"]\n`);
    const images = cloud.map((c) => `${c.registry}/${c.repo}:${c.tag}`);
    const cacheDir = join(run1, 'cache');
    const engineRun = async (name: string) => {
      const args = JSON.stringify({ images, arch: ARCH, outFile: join(run1, `${name}.tar`), cacheDir, registriesFile });
      const wall = await timed(() => must(process.execPath, ['--import', 'tsx', join(root, 'bench', 'engine-child.ts'), args], `engine ${name} build`));
      const r = JSON.parse(wall.value.trim().split('\n').pop()!) as { seconds: number; size: number; uniqueBlobBytes: number; totalBlobBytes: number; sha256: string; maxRssKb: number };
      return { ...r, wall: wall.seconds };
    };
    const cold = await engineRun('cold');
    const warm = await engineRun('warm');
    if (warm.sha256 !== cold.sha256) throw new Error('the warm rebuild produced different archive bytes than the cold build');

    // skopeo oci-archive per image, then one plain tar (as in baselines.sh).
    const skDir = join(run1, 'skopeo', 'images');
    await mkdir(skDir, { recursive: true });
    const sk = await timed(async () => {
      for (const c of cloud) {
        const name = `${c.registry}/${c.repo}:${c.tag}`;
        await must(
          'skopeo',
          ['--override-arch', ARCH, '--override-variant', 'v8', 'copy', '-q', '--src-tls-verify=false', `docker://${local(c)}`, `oci-archive:${join(skDir, `${name.replace(/[/:]/g, '-')}.tar`)}:${name}`],
          `skopeo copy ${name}`,
        );
      }
      await must('tar', ['cf', join(run1, 'skopeo-oci.tar'), '-C', join(run1, 'skopeo'), 'images'], 'tar cf');
    });
    const skBytes = (await stat(join(run1, 'skopeo-oci.tar'))).size;

    // The design documents' docker pull/save + tar czf, on a test dockerd pulling from the same registries.
    const daemon = await startDockerd({ insecureRegistries: [hub.host, k8s.host] });
    let seed: Awaited<ReturnType<typeof seedBaseline>>;
    try {
      seed = await seedBaseline({ cloud, local, runDir: run1, daemon });
    } finally {
      await daemon.stop();
    }

    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
    const rows: [string, number, number][] = [
      ['floor (unique blobs over HTTP)', floor.seconds, floorBytes],
      ['kubeprepare cold', cold.seconds, cold.size],
      ['kubeprepare warm', warm.seconds, warm.size],
      ['skopeo oci-archive + tar', sk.seconds, skBytes],
      ['docker pull/save + tar czf', seed.seconds, seed.bytes],
    ];
    console.log(`\ncloud ${ARCH} set: ${cloud.length} images, ${floor.value} unique blobs, scale ${scale}`);
    for (const [name, s, bytes] of rows) {
      console.log(`  ${name.padEnd(32)} ${s.toFixed(2).padStart(7)} s  ${(s / floor.seconds).toFixed(2).padStart(5)}× floor  ${mb(bytes).padStart(10)}`);
    }
    console.log(`  (engine wall time incl. node+tsx start-up: cold ${cold.wall.toFixed(2)} s, warm ${warm.wall.toFixed(2)} s)`);
    const checks: [string, boolean, string][] = [
      ['cold ≤ 1.5× floor', cold.seconds <= 1.5 * floor.seconds, `${(cold.seconds / floor.seconds).toFixed(2)}×`],
      ['warm ≤ 0.7× floor', warm.seconds <= 0.7 * floor.seconds, `${(warm.seconds / floor.seconds).toFixed(2)}×`],
      // uniqueBlobBytes = the floor's blobs plus the image manifests the archive must carry.
      ['archive ≤ unique blob bytes + 1%', cold.size <= cold.uniqueBlobBytes * 1.01, `${mb(cold.size)} vs ${mb(cold.uniqueBlobBytes)} (+${(((cold.size - cold.uniqueBlobBytes) / cold.uniqueBlobBytes) * 100).toFixed(2)}%)`],
      ['peak RSS ≤ 150 MB', cold.maxRssKb <= 150 * 1024 && warm.maxRssKb <= 150 * 1024, `cold ${(cold.maxRssKb / 1024).toFixed(0)} MB, warm ${(warm.maxRssKb / 1024).toFixed(0)} MB`],
    ];
    console.log('');
    for (const [name, ok, detail] of checks) console.log(`  ${ok ? 'PASS' : 'FAIL'}  ${name.padEnd(34)} ${detail}`);
    const failed = checks.filter((c) => !c[1]).length;
    console.log(`\n${checks.length - failed} passed, ${failed} failed`);
    process.exitCode = failed ? 1 : 0;
  } finally {
    await regs?.stop();
  }
}

main().catch((e: unknown) => {
  console.error(`bench failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
