/**
 * The whole build: `kubeprepare build --arch amd64,arm64,arm` (six bundles, the real CLI in a child
 * process) against the bench world (test/harness/bundle-world.ts: its versions manifest and release
 * server) whose registry holds the shared fixtures under the manifest's image names (fixtures.py pushas).
 * The registry's own access log proves every blob is fetched once (blob GETs = unique blobs of all six
 * bundles; the EdgeMesh agent is on both sides). No counting proxy sits in between: one in this process
 * copied every byte on the same 2 cores and charged the build, not the floor, ~1.4 s (5.90 s with it,
 * 4.51 s without, 2026-12-03). The floor: every unique blob of the six
 * bundles fetched once (bench/floor.ts networkFloor, directly from the registry) + writing the tarballs
 * (their bytes copied once, 4 parallel cp). Target: build ≤ 1.3× that floor (medians); the build's peak
 * RSS (under /usr/bin/time) ≤ 150 MB like every command's.
 */
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBundleWorldWith } from '../test/harness/bundle-world.js';
import { requestKind } from '../test/harness/proxy.js';
import { copyFloor, median, networkFloor, type Check } from './floor.js';
import { fixturesPy, must, root, run, settle, timed } from './lib.js';

interface PlanJson {
  bundles: { side: string; arch: string; images: { ref: string }[] }[];
}

export async function sixBundles(fixtures: string, rounds: number): Promise<Check[]> {
  const world = await startBundleWorldWith({ specs: [], registryAccessLog: true });
  try {
    const reg = world.registry;
    const served = reg.served!;
    await writeFile(join(world.work, 'registries.yaml'), `mirrors:\n  docker.io:\n    endpoint: ["${reg.url}"]\n  registry.k8s.io:\n    endpoint: ["${reg.url}"]\n`);
    const cli = join(root, 'bin', 'kubeprepare.js');
    // startBundleWorld set KP_OFFLINE=1 in this process: the CLI children inherit it (loopback only).
    const planOut = await must(process.execPath, [cli, 'plan', '--arch', 'amd64,arm64,arm', '--manifest', world.manifestPath, '--json'], 'kubeprepare plan');
    const plan = JSON.parse(planOut) as PlanJson;
    const refs = [...new Set(plan.bundles.flatMap((b) => b.images.map((i) => i.ref)))];
    await must('python3', [fixturesPy, 'pushas', fixtures, String(reg.port), String(reg.port), ...refs], 'fixtures.py pushas');
    const local = (ref: string) => `${reg.host}/${ref.replace(/^[^/]+\//, '')}`;
    const groups = plan.bundles.map((b) => ({ refs: b.images.map((i) => local(i.ref)), arch: b.arch }));
    const r = { build: [] as number[], floor: [] as number[], write: [] as number[], rssKb: [] as number[] };
    let blobGets = 0;
    let unique = 0;
    for (let i = 0; i < rounds; i++) {
      const dir = join(root, 'bench', '.work', 'six');
      await rm(dir, { recursive: true, force: true });
      // Each timed phase starts with the disk settled and its inputs in the page cache (lib.ts settle: the
      // removals' discards, the floor's writes; the registry's storage, the built tarballs for the copy floor).
      await settle(reg.root);
      const floor = await networkFloor(groups, join(dir, 'floor'));
      await settle(reg.root);
      const before = (await served()).length;
      const out = join(dir, 'out');
      // KP_BENCH_TRACE=1: the build's plain progress lines with the seconds since its start (where the time goes).
      const trace = process.env.KP_BENCH_TRACE === '1';
      // KP_BENCH_PROF=dir: the build under node --cpu-prof, its profile written to dir (bench/profile.ts reads such files).
      const prof = process.env.KP_BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.KP_BENCH_PROF}`] : [];
      const args = [...prof, cli, 'build', ...(trace ? [] : ['-q']), '--arch', 'amd64,arm64,arm', '--manifest', world.manifestPath, '--out', out, '--cache-dir', join(dir, 'cache')];
      // Under /usr/bin/time for the build's peak RSS (its last stderr line; the target holds at any scale).
      const b = await timed(() => run('/usr/bin/time', ['-f', '%M', process.execPath, ...args], { stamp: trace }));
      if (b.value.code !== 0) throw new Error(`six-bundle build failed: ${b.value.stderr}`);
      const lines = b.value.stderr.trimEnd().split('\n');
      const rssKb = Number(lines.pop()?.replace(/^\[[\d.]+\] /, ''));
      if (!Number.isFinite(rssKb)) throw new Error(`no peak RSS from /usr/bin/time: ${b.value.stderr.slice(-200)}`);
      if (trace) process.stdout.write(`${lines.join('\n')}\n`);
      const tarballs = (await readdir(out)).filter((f) => f.startsWith('kubeprepare-')).map((f) => join(out, f));
      await settle(...tarballs);
      const write = await copyFloor(tarballs, join(dir, 'copy'));
      blobGets = (await served()).slice(before).filter((q) => q.method === 'GET' && requestKind(q.path) === 'blob').length;
      unique = floor.blobs.length;
      r.build.push(b.seconds);
      r.floor.push(floor.seconds);
      r.write.push(write);
      r.rssKb.push(rssKb);
      console.log(`six bundles, round ${i + 1}/${rounds}: build ${b.seconds.toFixed(2)} s (peak RSS ${(rssKb / 1024).toFixed(0)} MB) · floor ${floor.seconds.toFixed(2)} s + writing ${tarballs.length} tarballs ${write.toFixed(2)} s · blob GETs ${blobGets} (unique ${unique})`);
    }
    const floor = median(r.floor) + median(r.write);
    const build = median(r.build);
    return [
      ['six bundles: each shared blob fetched once', blobGets === unique, `${blobGets} blob GETs for ${unique} unique blobs`],
      ['six bundles: peak RSS ≤ 150 MB', Math.max(...r.rssKb) <= 150 * 1024, `${(Math.max(...r.rssKb) / 1024).toFixed(0)} MB (highest of ${r.rssKb.length} rounds)`],
      // The writing floor swings with this VM's memory (0.09-1.88 s on 2026-12-04, with the tarballs read
      // first as well: lib.ts settle): the ratio against the fastest writing of the run is printed too.
      ['six bundles ≤ 1.3× (floor + writing)', build <= 1.3 * floor, `${(build / floor).toFixed(2)}× (${build.toFixed(2)} s vs ${median(r.floor).toFixed(2)} + ${median(r.write).toFixed(2)} s; against the fastest writing of the run, ${Math.min(...r.write).toFixed(2)} s: ${(build / (median(r.floor) + Math.min(...r.write))).toFixed(2)}×)`],
    ];
  } finally {
    await world.stop();
  }
}
