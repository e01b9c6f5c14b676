/**
 * The floors every ratio of the benchmarks is taken against, measured in the same run:
 *   network floor  every unique blob fetched ONCE over HTTP, 4 in parallel (curl), each written to its
 *                  own file, after the manifests were resolved (as shared/bench/baselines.sh floor()).
 *   disk floor     the same bytes copied from the blob cache, 4 in parallel (cp), each to its own file.
 * And small helpers: medians, the number of rounds, a start-up measurement.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ACCEPT, must, root, run, timed } from './lib.js';

export interface BlobUrl {
  digest: string;
  url: string;
}

/** The unique blobs (config + layers) of `refs` for `arch`, in first-seen order. `refs`: host/repo:tag. */
export async function resolveBlobs(refs: string[], arch: string): Promise<BlobUrl[]> {
  const seen = new Map<string, string>();
  for (const ref of refs) {
    const slash = ref.indexOf('/');
    const host = ref.slice(0, slash);
    const [repo, tag] = splitTag(ref.slice(slash + 1));
    const get = async (r: string) => (await (await fetch(`http://${host}/v2/${repo}/manifests/${r}`, { headers: { accept: ACCEPT } })).json()) as Record<string, unknown>;
    let man = await get(tag);
    if (Array.isArray(man.manifests)) {
      const m = (man.manifests as { digest: string; platform?: { architecture: string } }[]).find((e) => e.platform?.architecture === arch);
      if (!m) throw new Error(`${ref}: no ${arch} entry`);
      man = await get(m.digest);
    }
    for (const b of [man.config, ...(man.layers as unknown[])] as { digest: string }[]) {
      if (!seen.has(b.digest)) seen.set(b.digest, `http://${host}/v2/${repo}/blobs/${b.digest}`);
    }
  }
  return [...seen].map(([digest, url]) => ({ digest, url }));
}

function splitTag(s: string): [string, string] {
  const i = s.lastIndexOf(':');
  return i > s.lastIndexOf('/') ? [s.slice(0, i), s.slice(i + 1)] : [s, 'latest'];
}

/** xargs -P `parallel` over `pairs` (two words each) with the shell command `sh -c script $0 $1`. */
async function xargs(pairs: [string, string][], parallel: number, script: string, what: string): Promise<void> {
  const list = join(root, 'bench', '.work', `xargs-${process.pid}.txt`);
  await writeFile(list, pairs.map((p) => p.join(' ')).join('\n') + '\n');
  try {
    await must('sh', ['-c', `xargs -P${parallel} -n2 sh -c '${script}' < "$0"`, list], what);
  } finally {
    await rm(list, { force: true });
  }
}

/**
 * The network floor: resolve, then each blob once, `parallel` curls, each to its own file in `dir`.
 * `groups`: image references (host/repo:tag) with the architecture to take them for.
 */
export async function networkFloor(groups: { refs: string[]; arch: string }[], dir: string, parallel = 4): Promise<{ seconds: number; blobs: BlobUrl[] }> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const t = await timed(async () => {
    const all = new Map<string, BlobUrl>();
    for (const g of groups) for (const b of await resolveBlobs(g.refs, g.arch)) if (!all.has(b.digest)) all.set(b.digest, b);
    const blobs = [...all.values()];
    await xargs(blobs.map((b) => [b.url, join(dir, b.digest.slice(7))]), parallel, 'curl -sf -o "$1" "$0"', 'floor curls');
    return blobs;
  });
  return { seconds: t.seconds, blobs: t.value };
}

/** Copies `files` (4 parallel cp, each to its own file in `dir`): the cost of writing those bytes once. */
export async function copyFloor(files: string[], dir: string): Promise<number> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  return (await timed(() => xargs(files.map((f, i): [string, string] => [f, join(dir, String(i))]), 4, 'cp "$0" "$1"', 'copy floor'))).seconds;
}

/** The disk floor: the same blobs copied from the blob cache `cacheDir`, 4 parallel cp, each to its own file. */
export async function diskFloor(blobs: BlobUrl[], cacheDir: string, dir: string): Promise<number> {
  const files = blobs.map((b) => join(cacheDir, 'blobs', 'sha256', b.digest.slice(7)));
  for (const f of files) if (!existsSync(f)) throw new Error(`disk floor: ${f} is not in the cache`);
  return copyFloor(files, dir);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function roundsArg(dflt = 3): number {
  const i = process.argv.indexOf('--rounds');
  const n = Number(i >= 0 ? process.argv[i + 1] : (process.env.KP_BENCH_ROUNDS ?? String(dflt)));
  if (!Number.isInteger(n) || n < 1 || n > 9) throw new Error('bad --rounds (1..9)');
  return n;
}

/**
 * Start-up of the built CLI (dist/): median wall time of `--version` and `--help` over 5 runs each.
 * (bench/startup.ts, when present, is the fuller measurement and is run instead by run.ts.)
 */
export async function startupSeconds(): Promise<{ version: number; help: number }> {
  const main = join(root, 'bin', 'kubeprepare.js');
  if (!existsSync(join(root, 'dist', 'main.js'))) throw new Error('dist/main.js is missing: npm run build first');
  const one = async (flag: string) => {
    const xs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = await timed(() => run(process.execPath, [main, flag]));
      if (t.value.code !== 0) throw new Error(`kubeprepare ${flag} exited ${t.value.code}: ${t.value.stderr}`);
      xs.push(t.seconds);
    }
    return median(xs);
  };
  return { version: await one('--version'), help: await one('--help') };
}

export type Check = [name: string, ok: boolean, detail: string];

export function printChecks(checks: Check[]): number {
  console.log('');
  for (const [name, ok, detail] of checks) console.log(`  ${ok ? 'PASS' : 'FAIL'}  ${name.padEnd(40)} ${detail}`);
  const failed = checks.filter((c) => !c[1]).length;
  console.log(`\n${checks.length - failed} passed, ${failed} failed`);
  return failed;
}

export interface EngineResult {
  seconds: number;
  size: number;
  uniqueBlobBytes: number;
  sha256: string;
  maxRssKb: number;
}

/** One engine build in a child process (bench/engine-child.mjs, over dist/): its own time and peak RSS. */
export async function engineChild(args: { images: string[]; arch: string; outFile: string; cacheDir: string; registriesFile: string; concurrency?: number }): Promise<EngineResult> {
  const out = await must(process.execPath, [join(root, 'bench', 'engine-child.mjs'), JSON.stringify(args)], 'engine build');
  return JSON.parse(out.trim().split('\n').pop()!) as EngineResult;
}
