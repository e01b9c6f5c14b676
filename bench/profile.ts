/**
 * Profiles one cold and one warm registry-engine build of the cloud arm64 set (`node --cpu-prof`):
 *   node --import tsx bench/profile.ts [--scale S]
 * Prints the phases (engine-child.mjs) and the functions with the most self time; the .cpuprofile files
 * stay in bench/.work/profile/ (open them in Chrome DevTools or speedscope).
 */
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ARCH, must, prepareFixtures, root, scaleArg, startFixtureRegistries } from './lib.js';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }

async function topSelf(file: string, n = 12): Promise<string[]> {
  const p = JSON.parse(await readFile(file, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const self = new Map<string, number>();
  p.samples.forEach((id, i) => {
    const f = byId.get(id)!.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(src|node_modules)\//, '$1/')}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + (p.timeDeltas[i] ?? 0));
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  return [...self].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, us]) => `${(us / 1e3).toFixed(0).padStart(6)} ms ${((us / total) * 100).toFixed(1).padStart(5)}%  ${k}`);
}

const scale = scaleArg();
const dir = join(root, 'bench', '.work', 'profile');
await rm(dir, { recursive: true, force: true });
await mkdir(dir, { recursive: true });
const { fixtures, catalog, cloud } = await prepareFixtures(scale);
const regs = await startFixtureRegistries(fixtures, catalog.length);
try {
  const registriesFile = join(dir, 'registries.yaml');
  await writeFile(registriesFile, `mirrors:\n  docker.io:\n    endpoint: ["${regs.hub.url}"]\n  registry.k8s.io:\n    endpoint: ["${regs.k8s.url}"]\n`);
  const images = cloud.map((c) => `${c.registry}/${c.repo}:${c.tag}`);
  for (const name of ['cold', 'warm']) {
    const profDir = join(dir, name);
    const args = JSON.stringify({ images, arch: ARCH, outFile: join(dir, `${name}.tar`), cacheDir: join(dir, 'cache'), registriesFile });
    const out = await must(process.execPath, ['--cpu-prof', '--cpu-prof-dir', profDir, join(root, 'bench', 'engine-child.mjs'), args], `engine ${name}`);
    console.log(`\n${name}: ${out.trim().split('\n').pop()}`);
    const [prof] = await readdir(profDir);
    for (const l of await topSelf(join(profDir, prof!))) console.log(`  ${l}`);
  }
} finally {
  await regs.stop();
}
